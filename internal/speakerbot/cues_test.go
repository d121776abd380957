package speakerbot

import "testing"

func TestParseCues(t *testing.T) {
	cases := []struct {
		name string
		in   string
		ok   bool
	}{
		{"speech and tone", `{"duration_ms": 900, "cues":[{"kind":"speech","text":"hi","voice":"en-us","start_ms":0,"end_ms":400},{"kind":"tone","freq_hz":1000,"start_ms":500,"end_ms":600}]}`, true},
		{"no cues", `{"duration_ms": 10}`, true},
		{"missing kind", `{"cues":[{"start_ms":0,"end_ms":1}]}`, false},
		{"end before start", `{"cues":[{"kind":"tone","start_ms":5,"end_ms":1}]}`, false},
		{"negative start", `{"cues":[{"kind":"tone","start_ms":-5,"end_ms":1}]}`, false},
		{"negative duration", `{"duration_ms": -1}`, false},
		{"not json", `cues`, false},
		{"wrong type", `{"cues":[{"kind":"tone","start_ms":"0","end_ms":1}]}`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cs, err := ParseCues([]byte(c.in))
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if c.ok && cs == nil {
				t.Fatal("nil cue sheet")
			}
		})
	}
}

func FuzzParseCues(f *testing.F) {
	f.Add([]byte(`{"duration_ms": 900, "cues":[{"kind":"speech","text":"hi","start_ms":0,"end_ms":400}]}`))
	f.Add([]byte(`{"cues":[{"kind":"tone","freq_hz":1e309}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := ParseCues(b)
		if err != nil {
			return
		}
		for _, c := range cs.Cues {
			if c.Kind == "" || c.StartMS < 0 || c.EndMS < c.StartMS {
				t.Fatalf("accepted bad cue %+v", c)
			}
		}
	})
}
