package detect

import (
	"math/rand/v2"
	"sort"
	"strconv"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// TestPhoneDirectMatchesParse checks the fast path against libphonenumber's
// own Parse for every region in directRegions: national numbers made from
// each region's example numbers (with and without the trunk prefix, with
// random last digits, shortened and lengthened) and random digit strings
// must get the same verdict and the same E.164 form.
func TestPhoneDirectMatchesParse(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	types := []phonenumbers.PhoneNumberType{phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.TOLL_FREE}
	regions := make([]string, 0, len(directRegions))
	for reg := range directRegions {
		regions = append(regions, reg)
	}
	sort.Strings(regions)
	var num phonenumbers.PhoneNumber
	checked, valid := 0, 0
	for _, reg := range regions {
		pr := phoneRegion{code: reg, cc: int32(phonenumbers.GetCountryCodeForRegion(reg)), ndd: phonenumbers.GetNddPrefixForRegion(reg, true), direct: true}
		var cands []string
		for _, typ := range types {
			ex := phonenumbers.GetExampleNumberForType(reg, typ)
			if ex == nil {
				continue
			}
			nsn := phonenumbers.GetNationalSignificantNumber(ex)
			for range 40 {
				d := []byte(nsn)
				for k := max(0, len(d)-4); k < len(d); k++ {
					d[k] = byte('0' + r.IntN(10))
				}
				cands = append(cands, string(d), pr.ndd+string(d), string(d[:len(d)-1]), string(d)+strconv.Itoa(r.IntN(10)))
			}
		}
		for range 200 {
			n := 7 + r.IntN(7)
			d := make([]byte, n)
			for k := range d {
				d[k] = byte('0' + r.IntN(10))
			}
			cands = append(cands, string(d))
		}
		for _, c := range cands {
			want, wantOK := "", false
			if ref, err := phonenumbers.Parse(c, reg); err == nil && phonenumbers.IsValidNumber(ref) {
				want, wantOK = phonenumbers.Format(ref, phonenumbers.E164), true
			}
			got, ok := pr.national(&num, c)
			checked++
			if ok {
				valid++
			}
			if ok != wantOK || got != want {
				t.Errorf("%s %s: direct %q %v, Parse %q %v", reg, c, got, ok, want, wantOK)
			}
		}
	}
	t.Logf("%d candidates in %d regions, %d valid", checked, len(regions), valid)
	if valid < checked/10 {
		t.Errorf("only %d of %d candidates valid: the test checks too little", valid, checked)
	}
}

func TestPhoneInternational(t *testing.T) {
	var num phonenumbers.PhoneNumber
	for _, c := range []string{"447911123456", "12025550143", "971501234567", "201012345678", "390612345678", "33612345678"} {
		ref, err := phonenumbers.Parse("+"+c, "ZZ")
		want := ""
		if err == nil && phonenumbers.IsValidNumber(ref) {
			want = phonenumbers.Format(ref, phonenumbers.E164)
		}
		got, _ := international(&num, c)
		if got != want {
			t.Errorf("+%s: %q, Parse %q", c, got, want)
		}
	}
}
