package policy

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

const goodPolicy = `version: "t1"
phone_regions: [US, GB]
rules:
  - id: pii.phone
    category: pii.phone
    severity: medium
    strength: 0.9
    detector: phone
  - id: threat
    category: abuse.threat
    severity: high
    lexicon:
      terms: [kill you]
      files: [extra.txt, builtin:en/threats.txt]
  - id: rec
    category: leak.recording
    severity: medium
    regex: {patterns: ['im recording (this|the) room']}
`

func TestParseGood(t *testing.T) {
	dir := fstest.MapFS{"extra.txt": {Data: []byte("# comment\nwatch out buddy\n\n")}}
	p, err := Parse([]byte(goodPolicy), Source{Name: "good.yaml", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if p.Version() != "t1" || strings.Join(p.Rules(), ",") != "pii.phone,threat,rec" {
		t.Errorf("version %q rules %v", p.Version(), p.Rules())
	}
	got := p.Evaluate(&Segment{Text: "Watch out buddy, I'm recording this room", Speech: true})
	var ids []string
	for _, f := range got {
		ids = append(ids, f.RuleID)
	}
	if len(ids) != 2 {
		t.Errorf("findings %v, want threat and rec", ids)
	}
}

func TestDefaultPolicy(t *testing.T) {
	p := mustDefault(t)
	if p.Version() == "" || len(p.Rules()) < 10 {
		t.Errorf("default policy: version %q, %d rules", p.Version(), len(p.Rules()))
	}
	if !strings.Contains(string(DefaultYAML()), "version:") {
		t.Error("DefaultYAML")
	}
}

// TestParseProblems: every problem in a file is reported, each with the
// place and how to fix it.
func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings, each in some problem
	}{
		{"unknown keys", `version: x
rules:
  - id: a
    category: abuse.threat
    severity: high
    lexcon: {terms: [x]}
    lexicon: {terms: [kill you], file: [y]}
`, []string{`line 6: a rule: unknown key "lexcon"`, `line 7: lexicon: unknown key "file"`, "known keys here: terms, files"}},
		{"semantic", `rules:
  - id: a
    category: abuse.threatt
    severity: urgent
    strength: 1.5
    regex: {patterns: ['kill (you', 'Kill you']}
  - id: a
    category: pii.phone
    detector: fone
  - id: b
    category: leak.doxxing
    severity: high
    lexicon: {terms: ['...', his number]}
    near: {categories: [pii.email, pii.nope], within: 0}
  - id: c
    category: abuse.hate
    severity: low
    lexicon: {terms: [x]}
    regex: {patterns: [x]}
`, []string{
			"version: the policy has no version",
			`line 2: rules[0] (a).category: unknown category "abuse.threatt" — fix: use one of`,
			`rules[0] (a).severity: bad severity "urgent" — fix: use low, medium, high or critical`,
			"strength 1.5 is outside (0, 1]",
			`rules[0] (a).regex.patterns[0]: bad pattern "kill (you"`, "missing closing )",
			`rules[0] (a).regex.patterns[1]`, `write "kill"`,
			`line 7: rules[1] (a): duplicate rule id "a" (also rules[0])`,
			`unknown detector "fone" — fix: use one of phone, email, card, iban`,
			`term "..." has no letters or digits`,
			`near.categories[0]: no rule reports category "pii.email"`,
			`near.categories[1]: unknown category "pii.nope"`,
			"near.within: 0 is outside [1, 50]",
			"rules[3] (c): the rule has 2 of detector, lexicon and regex",
		}},
		{"files", `version: x
rules:
  - id: a
    category: abuse.threat
    severity: high
    lexicon: {files: [missing.txt, builtin:en/nope.txt, ../../etc/passwd]}
`, []string{`lexicon file "missing.txt"`, `no builtin lexicon "builtin:en/nope.txt" — fix: use one of: builtin:`, "outside the policy's directory"}},
		{"phone without regions", "version: x\nrules:\n  - {id: p, category: pii.phone, severity: low, detector: phone}\n", []string{"the phone detector needs region hints"}},
		{"syntax", "version: [unclosed\n", []string{"yaml:"}},
		{"empty", "", []string{"the file is empty"}},
		{"scalars", "version: x\nscoring: {min_score: 2}\nphone_regions: [XX]\nrules: oops\n", []string{"scoring.min_score: 2 is outside [0, 1]", `unknown region "XX"`, "cannot unmarshal"}},
		{"two documents", goodPolicy + "---\nversion: y\n", []string{"more than one YAML document"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), Source{Name: "p.yaml", Dir: fstest.MapFS{}})
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("err = %v, want *LoadError", err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("missing %q in:\n%s", w, msg)
				}
			}
			for _, p := range le.Problems {
				if p.Fix == "" {
					t.Errorf("problem without a fix: %s", p)
				}
			}
		})
	}
}

func TestNoDirForFiles(t *testing.T) {
	_, err := Parse([]byte(goodPolicy), Source{})
	if err == nil || !strings.Contains(err.Error(), "this policy has no directory") {
		t.Errorf("err = %v", err)
	}
}

// FuzzParse feeds arbitrary bytes to the policy decoder: it must never
// panic, must either return a policy or a *LoadError with at least one
// problem, and a policy it returns must evaluate text.
func FuzzParse(f *testing.F) {
	f.Add([]byte(goodPolicy))
	f.Add(defaultPolicy)
	f.Add([]byte("version: x\nrules:\n  - {id: a, category: abuse.hate, severity: low, regex: {patterns: ['(a|b']}}\n"))
	f.Add([]byte("rules: [{near: {within: -1}}]"))
	f.Add([]byte("\t- : :"))
	dir := fstest.MapFS{"extra.txt": {Data: []byte("watch out buddy\n")}}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, Source{Name: "fuzz.yaml", Dir: dir})
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) || len(le.Problems) == 0 {
				t.Fatalf("error %v is not a *LoadError with problems", err)
			}
			return
		}
		p.Evaluate(&Segment{Text: "watch out buddy, call 202 555 0143, i will kill you", Speech: true})
	})
}
