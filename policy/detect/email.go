package detect

import (
	"strings"
	"unicode"

	"github.com/earshot/earshot/policy/normalize"
)

// Email finds e-mail addresses written ("jane.doe@example.org"), spoken
// ("john dot smith at example dot com", "a l e x at proton dot me",
// Arabic "محمد نقطه حسن ات جيميل نقطه كوم") or mixed. The text around the
// tokens tells the two apart: a written address has "@" and "." between
// its tokens, a spoken one says "at" and "dot". Spoken addresses must end
// in a known top-level domain, since "at" and "dot" are ordinary words.
type Email struct{ rule *Rule }

var _ Detector = (*Email)(nil)

// NewEmail makes an e-mail detector.
func NewEmail(rule *Rule) *Email { return &Email{rule: rule} }

type sepKind uint8

const (
	sepNone sepKind = iota
	sepSpace
	sepAt
	sepDot
	sepUnderscore
	sepDash
	sepPlus
)

var sepChars = map[sepKind]string{sepDot: ".", sepUnderscore: "_", sepDash: "-", sepPlus: "+"}

// spokenSep are the words said for an address's punctuation.
var spokenSep = map[string]sepKind{
	"at": sepAt, "ات": sepAt,
	"dot": sepDot, "point": sepDot, "نقطه": sepDot, "دوت": sepDot,
	"underscore": sepUnderscore, "dash": sepDash, "hyphen": sepDash,
}

// arabicDomainWords are domain labels as Arabic speakers say them.
var arabicDomainWords = map[string]string{
	"جيميل": "gmail", "جي ميل": "gmail", "هوتميل": "hotmail", "ياهو": "yahoo", "اوتلوك": "outlook",
	"كوم": "com", "نت": "net", "اورج": "org",
}

// spokenTLDs are the top-level domains accepted in a spoken address.
var spokenTLDs = map[string]bool{}

func init() {
	for _, t := range strings.Fields(`com net org edu gov mil int io co uk us me ai app dev info biz name pro tv
		ae sa eg jo qa kw bh om lb iq ma tn dz ly sy ps ye sd de fr es it nl be ch at se no dk fi ie pt pl
		ca au nz in pk ng za ke br mx jp cn kr ru tr gr cz ro hu il sg my id ph hk tw email online site tech`) {
		spokenTLDs[t] = true
	}
}

// writtenSep classifies the text between tokens i-1 and i.
func writtenSep(d *normalize.Doc, i int) sepKind {
	if i <= 0 || i >= len(d.Tokens) || d.Tokens[i].Break || d.Tokens[i].Piece != d.Tokens[i-1].Piece {
		return sepNone
	}
	switch g := d.Gap(i); g {
	case "@":
		return sepAt
	case ".":
		return sepDot
	case "_":
		return sepUnderscore
	case "-":
		return sepDash
	case "+":
		return sepPlus
	default:
		if strings.TrimSpace(g) == "" {
			return sepSpace
		}
		return sepNone
	}
}

// Detect implements Detector.
func (e *Email) Detect(d *normalize.Doc, out []Match) []Match {
	for k := 1; k < len(d.Tokens); k++ {
		var localEnd, domainStart int
		spoken := false
		switch {
		case writtenSep(d, k) == sepAt:
			localEnd, domainStart = k-1, k
		case spokenSep[d.Norm(k)] == sepAt && writtenSep(d, k) == sepSpace && writtenSep(d, k+1) == sepSpace:
			localEnd, domainStart, spoken = k-1, k+1, true
		default:
			continue
		}
		domain, last, domSpoken, ok := parseDomain(d, domainStart)
		if !ok {
			continue
		}
		spoken = spoken || domSpoken
		local, first, locSpoken, ok := parseLocal(d, localEnd)
		if !ok {
			continue
		}
		spoken = spoken || locSpoken
		tld := domain[strings.LastIndexByte(domain, '.')+1:]
		if spoken && !spokenTLDs[tld] {
			continue
		}
		out = append(out, Match{Rule: e.rule, First: first, Last: last, Value: local + "@" + domain})
		k = last
	}
	return out
}

// parseDomain reads "label (dot label)+" from token j.
func parseDomain(d *normalize.Doc, j int) (domain string, last int, spoken, ok bool) {
	if j >= len(d.Tokens) {
		return "", 0, false, false
	}
	label := func(i int) (string, bool) {
		s := d.Norm(i)
		if t, ok := arabicDomainWords[s]; ok {
			return t, true
		}
		if _, sep := spokenSep[s]; sep {
			return "", false
		}
		for _, r := range s {
			if r > unicode.MaxASCII {
				return "", false
			}
		}
		return s, true
	}
	first, ok := label(j)
	if !ok {
		return "", 0, false, false
	}
	labels := []string{first}
	for {
		switch {
		case writtenSep(d, j+1) == sepDot:
			l, ok := label(j + 1)
			if !ok {
				goto done
			}
			labels = append(labels, l)
			j++
		case writtenSep(d, j+1) == sepDash:
			l, ok := label(j + 1)
			if !ok {
				goto done
			}
			labels[len(labels)-1] += "-" + l
			j++
		case writtenSep(d, j+1) == sepSpace && j+2 < len(d.Tokens) && spokenSep[d.Norm(j+1)] == sepDot && writtenSep(d, j+2) == sepSpace:
			l, ok := label(j + 2)
			if !ok {
				goto done
			}
			labels = append(labels, l)
			j += 2
			spoken = true
		default:
			goto done
		}
	}
done:
	if len(labels) < 2 {
		return "", 0, false, false
	}
	tld := labels[len(labels)-1]
	if len(tld) < 2 || len(tld) > 24 {
		return "", 0, false, false
	}
	for i := 0; i < len(tld); i++ {
		if !isLower(tld[i]) {
			return "", 0, false, false
		}
	}
	return strings.Join(labels, "."), j, spoken, true
}

// parseLocal reads the local part backwards from token j.
func parseLocal(d *normalize.Doc, j int) (local string, first int, spoken, ok bool) {
	if j < 0 {
		return "", 0, false, false
	}
	word := func(i int) bool {
		_, sep := spokenSep[d.Norm(i)]
		return !sep
	}
	// one label ending at token j: spelled letters, a word with a spoken
	// number after it ("dave eighty"), or one token.
	labelAt := func(j int) (string, int, bool) {
		if !word(j) {
			return "", 0, false
		}
		s := d.Norm(j)
		if len([]rune(s)) == 1 {
			k := j
			for k > 0 && writtenSep(d, k) == sepSpace && len([]rune(d.Norm(k-1))) == 1 && word(k-1) {
				k--
			}
			if k < j {
				var b strings.Builder
				for i := k; i <= j; i++ {
					b.WriteString(d.Norm(i))
				}
				return b.String(), k, true
			}
		}
		if digits, next, ok := d.NumberAt(j, true); ok && next == j+1 && !isDigitsOnly(s) && j > 0 && writtenSep(d, j) == sepSpace && word(j-1) {
			if _, isNum, _ := d.NumberAt(j-1, false); isNum == j-1 {
				return d.Norm(j-1) + digits, j - 1, true
			}
		}
		return s, j, true
	}
	local, first, ok = labelAt(j)
	if !ok {
		return "", 0, false, false
	}
	for first > 0 {
		switch sep := writtenSep(d, first); sep {
		case sepDot, sepUnderscore, sepDash, sepPlus:
			l, f, ok := labelAt(first - 1)
			if !ok {
				return local, first, spoken, true
			}
			local, first = l+sepChars[sep]+local, f
		case sepSpace:
			k, isSep := spokenSep[d.Norm(first-1)]
			if !isSep || k == sepAt || first < 2 || writtenSep(d, first-1) != sepSpace {
				return local, first, spoken, true
			}
			l, f, ok := labelAt(first - 2)
			if !ok {
				return local, first, spoken, true
			}
			local, first, spoken = l+sepChars[k]+local, f, true
		default:
			return local, first, spoken, true
		}
	}
	return local, first, spoken, true
}

func isDigitsOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}
