// Command gen renders lines.txt (hand-written transcript lines with
// placeholders for numbers) into ../labelled.jsonl. It exists so the numbers
// in the labelled set are real members of their class (libphonenumber-valid
// phone numbers, Luhn- and IIN-valid cards, mod-97-valid IBANs, Luhn-valid
// IMEIs) and their spoken forms are spelled consistently. Output is
// deterministic: the same lines.txt always gives the same file.
//
//	go run ./policy/testdata/labelled/gen
//
// Template line: lang | labels (space separated, or "none") | tag | text.
// Placeholders: {phone:REGION:FORM} {card:BRAND:FORM} {imei:FORM}
// {iban:CC:FORM} {digits:N:FORM} (see render* below for the forms).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"

	"github.com/earshot/earshot/policy/detect"
)

type entry struct {
	ID     string   `json:"id"`
	Lang   string   `json:"lang"`
	Text   string   `json:"text"`
	Labels []string `json:"labels"`
	Split  string   `json:"split"`
	Tag    string   `json:"tag,omitempty"`
}

var rng = rand.New(rand.NewPCG(2026, 11))

var placeholder = regexp.MustCompile(`\{([a-z0-9]+):([A-Za-z0-9]+)(?::([a-z0-9]+))?\}`)

func main() {
	_, self, _, _ := runtime.Caller(0)
	dir := filepath.Dir(self)
	f, err := os.Open(filepath.Join(dir, "lines.txt"))
	if err != nil {
		fail(err)
	}
	defer f.Close()
	var out []entry
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		n++
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.SplitN(line, "|", 4)
		if len(parts) != 4 {
			fail(fmt.Errorf("lines.txt:%d: want 4 fields", n))
		}
		lang, labels, tag, text := strings.TrimSpace(parts[0]), strings.Fields(parts[1]), strings.TrimSpace(parts[2]), strings.TrimSpace(parts[3])
		if len(labels) == 1 && labels[0] == "none" {
			labels = []string{}
		}
		text = placeholder.ReplaceAllStringFunc(text, func(m string) string {
			g := placeholder.FindStringSubmatch(m)
			s, err := render(g[1], g[2], g[3])
			if err != nil {
				fail(fmt.Errorf("lines.txt:%d: %s: %w", n, m, err))
			}
			return s
		})
		text = strings.ToLower(text)
		stratum := lang + "/"
		if len(labels) > 0 {
			stratum += labels[0]
		} else if strings.HasPrefix(tag, "hard") {
			stratum += "hard"
		} else {
			stratum += "none"
		}
		split := "tune"
		if seen[stratum]%2 == 1 {
			split = "heldout"
		}
		seen[stratum]++
		out = append(out, entry{ID: fmt.Sprintf("%s-%03d", lang, len(out)+1), Lang: lang, Text: text, Labels: labels, Split: split, Tag: tag})
	}
	if err := sc.Err(); err != nil {
		fail(err)
	}
	w, err := os.Create(filepath.Join(dir, "..", "labelled.jsonl"))
	if err != nil {
		fail(err)
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, e := range out {
		if err := enc.Encode(e); err != nil {
			fail(err)
		}
	}
	if err := w.Close(); err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "%d entries\n", len(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gen:", err)
	os.Exit(1)
}

func render(kind, a, b string) (string, error) {
	switch kind {
	case "phone":
		return renderPhone(a, b)
	case "card":
		return renderCard(a, b)
	case "imei":
		return renderGroups(imei(), []int{2, 6, 6, 1}, a), nil
	case "iban":
		return renderIBAN(a, b)
	case "digits":
		n, err := strconv.Atoi(a)
		if err != nil {
			return "", err
		}
		return renderGroups(randDigits(n), nil, b), nil
	}
	return "", fmt.Errorf("unknown placeholder %q", kind)
}

func randDigits(n int) string {
	var sb strings.Builder
	for range n {
		sb.WriteByte(byte('0' + rng.IntN(10)))
	}
	return sb.String()
}

func pick(s string) byte { return s[rng.IntN(len(s))] }

// Phone numbers: national patterns per region, kept only when libphonenumber
// calls them valid for that region.
func renderPhone(region, form string) (string, error) {
	var num *phonenumbers.PhoneNumber
	for range 1000 {
		var nat string
		switch region {
		case "US":
			areas := []string{"202", "212", "213", "312", "415", "617", "713", "305", "206", "404"}
			nat = areas[rng.IntN(len(areas))] + "555" + "01" + randDigits(2)
		case "GB":
			if rng.IntN(3) == 0 {
				nat = "0207946" + "0" + randDigits(3)
			} else {
				// Ofcom's range for drama: 07700 900000–900999.
				nat = "07700900" + randDigits(3)
			}
		case "AE":
			nat = "05" + string(pick("024568")) + randDigits(7)
		case "SA":
			nat = "05" + string(pick("034569")) + randDigits(7)
		case "EG":
			nat = "01" + string(pick("0125")) + randDigits(8)
		case "JO":
			nat = "07" + string(pick("789")) + randDigits(7)
		default:
			return "", fmt.Errorf("no pattern for region %s", region)
		}
		n, err := phonenumbers.Parse(nat, region)
		if err == nil && phonenumbers.IsValidNumberForRegion(n, region) {
			num = n
			break
		}
	}
	if num == nil {
		return "", fmt.Errorf("no valid number for %s", region)
	}
	national := phonenumbers.Format(num, phonenumbers.NATIONAL)
	groups := digitGroups(national)
	cc := strconv.Itoa(int(num.GetCountryCode()))
	nsn := phonenumbers.GetNationalSignificantNumber(num)
	switch form {
	case "nat":
		return national, nil
	case "intl":
		return phonenumbers.Format(num, phonenumbers.INTERNATIONAL), nil
	case "e164":
		return phonenumbers.Format(num, phonenumbers.E164), nil
	case "spokenintl":
		return "plus " + words(cc, "zero") + " " + wordsGroups(digitGroups(phonenumbers.Format(num, phonenumbers.INTERNATIONAL))[1:], "oh"), nil
	case "arintl":
		return "+" + cc + " " + arIndic(nsn), nil
	default:
		return renderGroups(strings.Join(groups, ""), groupLens(groups), form), nil
	}
}

func digitGroups(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r < '0' || r > '9' })
}

func groupLens(g []string) []int {
	out := make([]int, len(g))
	for i, s := range g {
		out[i] = len(s)
	}
	return out
}

func split(d string, lens []int) []string {
	if lens == nil {
		for i := 0; i < len(d); i += 4 {
			lens = append(lens, min(4, len(d)-i))
		}
	}
	var out []string
	for _, l := range lens {
		if l > len(d) {
			l = len(d)
		}
		out = append(out, d[:l])
		d = d[l:]
	}
	if d != "" {
		out = append(out, d)
	}
	return out
}

var enDigit = []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
var arDigit = []string{"صفر", "واحد", "اثنين", "ثلاثة", "أربعة", "خمسة", "ستة", "سبعة", "ثمانية", "تسعة"}
var arDigitEG = []string{"صفر", "واحد", "اتنين", "تلاتة", "اربعة", "خمسة", "ستة", "سبعة", "تمانية", "تسعة"}
var enTens = []string{"", "ten", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"}
var enTeens = []string{"ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"}

func words(d, zero string) string {
	var w []string
	for _, c := range d {
		if c == '0' {
			w = append(w, zero)
		} else {
			w = append(w, enDigit[c-'0'])
		}
	}
	return strings.Join(w, " ")
}

func wordsGroups(g []string, zero string) string {
	var w []string
	for _, s := range g {
		w = append(w, words(s, zero))
	}
	return strings.Join(w, " ")
}

func pair(p string) string {
	switch {
	case p[0] == '0':
		return "oh " + enDigit[p[1]-'0']
	case p[0] == '1':
		return enTeens[p[1]-'0']
	case p[1] == '0':
		return enTens[p[0]-'0']
	default:
		return enTens[p[0]-'0'] + " " + enDigit[p[1]-'0']
	}
}

func doubled(d string) string {
	var w []string
	for i := 0; i < len(d); {
		j := i
		for j < len(d) && d[j] == d[i] {
			j++
		}
		run := j - i
		name := enDigit[d[i]-'0']
		if d[i] == '0' {
			name = "oh"
		}
		switch {
		case run == 2:
			w = append(w, "double "+name)
		case run == 3:
			w = append(w, "triple "+name)
		default:
			for range run {
				w = append(w, name)
			}
		}
		i = j
	}
	return strings.Join(w, " ")
}

func arIndic(d string) string { return mapDigits(d, '٠') }
func eastern(d string) string { return mapDigits(d, '۰') }
func mapDigits(d string, zero rune) string {
	var sb strings.Builder
	for _, c := range d {
		if c >= '0' && c <= '9' {
			sb.WriteRune(zero + (c - '0'))
		} else {
			sb.WriteRune(c)
		}
	}
	return sb.String()
}

func arWords(d string, table []string) string {
	var w []string
	for _, c := range d {
		w = append(w, table[c-'0'])
	}
	return strings.Join(w, " ")
}

// renderGroups writes digits d (grouped by lens, or in fours) in a form:
// compact, grouped, dashed, spoken (zero), spokenoh, dots (Whisper's
// "5.5.5, 1.2.3"), double, tens (last group read as pairs), mixed (first
// group in digits, then words), ar, areg (Egyptian words), arindic,
// eastern, armixed.
func renderGroups(d string, lens []int, form string) string {
	g := split(d, lens)
	switch form {
	case "compact":
		return d
	case "grouped":
		return strings.Join(g, " ")
	case "dashed":
		return strings.Join(g, "-")
	case "spoken":
		return wordsGroups(g, "zero")
	case "spokenoh":
		return wordsGroups(g, "oh")
	case "dots":
		var parts []string
		for _, s := range g {
			parts = append(parts, strings.Join(strings.Split(s, ""), "."))
		}
		return strings.Join(parts, ", ")
	case "double":
		var parts []string
		for _, s := range g {
			parts = append(parts, doubled(s))
		}
		return strings.Join(parts, " ")
	case "tens":
		last := g[len(g)-1]
		head := wordsGroups(g[:len(g)-1], "oh")
		if len(last)%2 != 0 {
			return head + " " + words(last, "oh")
		}
		var ps []string
		for i := 0; i < len(last); i += 2 {
			ps = append(ps, pair(last[i:i+2]))
		}
		return head + " " + strings.Join(ps, " ")
	case "mixed":
		return g[0] + " " + wordsGroups(g[1:], "zero")
	case "ar":
		return arWords(d, arDigit)
	case "areg":
		return arWords(d, arDigitEG)
	case "arindic":
		return arIndic(strings.Join(g, " "))
	case "eastern":
		return eastern(d)
	case "armixed":
		return arWords(g[0], arDigit) + " " + strings.Join(g[1:], " ")
	}
	fail(fmt.Errorf("unknown form %q", form))
	return ""
}

func luhnComplete(prefix string, length int) string {
	d := prefix + randDigits(length-len(prefix)-1)
	for c := byte('0'); c <= '9'; c++ {
		if detect.Luhn(d + string(c)) {
			return d + string(c)
		}
	}
	panic("unreachable")
}

func imei() string { return luhnComplete("35"+randDigits(6), 15) }

func renderCard(brand, form string) (string, error) {
	var d string
	var lens []int
	switch brand {
	case "visa":
		d = luhnComplete("4", 16)
	case "mc":
		d = luhnComplete(strconv.Itoa(51+rng.IntN(5)), 16)
	case "amex":
		d = luhnComplete([]string{"34", "37"}[rng.IntN(2)], 15)
		lens = []int{4, 6, 5}
	case "discover":
		d = luhnComplete("6011", 16)
	case "noiin": // Luhn-valid but no card network issues this prefix/length
		d = luhnComplete("9"+randDigits(1), 16)
	case "badluhn":
		d = luhnComplete("4", 16)
		last := (d[15]-'0'+1)%10 + '0'
		d = d[:15] + string(last)
	default:
		return "", fmt.Errorf("unknown brand %q", brand)
	}
	return renderGroups(d, lens, form), nil
}

var ibanSpec = map[string]struct {
	letters, digits int
}{
	"GB": {4, 14}, "DE": {0, 18}, "FR": {0, 23}, "NL": {4, 10}, "SA": {0, 20}, "AE": {0, 19}, "EG": {0, 25}, "JO": {4, 22}, "ES": {0, 20},
}

func renderIBAN(cc, form string) (string, error) {
	bad := strings.HasSuffix(form, "bad")
	form = strings.TrimSuffix(form, "bad")
	spec, ok := ibanSpec[cc]
	if !ok {
		return "", fmt.Errorf("unknown IBAN country %q", cc)
	}
	var bban strings.Builder
	for range spec.letters {
		bban.WriteByte(byte('A' + rng.IntN(26)))
	}
	bban.WriteString(randDigits(spec.digits))
	check := 98 - mod97(bban.String()+cc+"00")
	iban := fmt.Sprintf("%s%02d%s", cc, check, bban.String())
	if bad {
		b := []byte(iban)
		i := len(b) - 3
		b[i] = (b[i]-'0'+3)%10 + '0'
		iban = string(b)
	}
	g := split(iban, nil)
	switch form {
	case "grouped":
		return strings.Join(g, " "), nil
	case "compact":
		return iban, nil
	case "spoken":
		var w []string
		for _, c := range iban {
			if c >= '0' && c <= '9' {
				w = append(w, enDigit[c-'0'])
			} else {
				w = append(w, string(c))
			}
		}
		return strings.Join(w, " "), nil
	case "arindic":
		return arIndic(strings.Join(g, " ")), nil
	}
	return "", fmt.Errorf("unknown IBAN form %q", form)
}

func mod97(s string) int {
	r := 0
	for _, c := range s {
		var v int
		if c >= 'A' && c <= 'Z' {
			v = int(c-'A') + 10
			r = (r*100 + v) % 97
			continue
		}
		v = int(c - '0')
		r = (r*10 + v) % 97
	}
	return r
}
