package policy

import (
	"slices"
	"testing"
)

// heardWord is one word as the Whisper fixture gave it.
type heardWord struct {
	text string
	prob float64
}

// What tiny.en on the test bed heard for tune lines of the spoken set
// (testdata/spoken, `go run ./cmd/hearset`), with its words and word
// probabilities: the pipeline evaluates these segments, not clean text.
// The expected categories are the lines' labels.
func TestHeardTuneLines(t *testing.T) {
	p := mustDefault(t)
	tests := []struct {
		id       string
		text     string
		noSpeech float64
		words    []heardWord
		want     []string
	}{
		// dashes between digit groups as words "-25", "-5"
		{"sp-001", "My number is 2-25-5-5-0143", 0.11, []heardWord{{"My", 0.7621}, {"number", 0.9129}, {"is", 0.9864}, {"2", 0.1094}, {"-25", 0.1432}, {"-5", 0.3909}, {"-5", 0.493}, {"-0143", 0.7958}}, []string{"pii.phone"}},
		// Whisper's words split "outlook.com." into "outlook" and ".com."
		{"sp-011", "He may only have to lose the underscore read at outlook.com.", 0.10, []heardWord{{"He", 0.4901}, {"may", 0.4896}, {"only", 0.314}, {"have", 0.4625}, {"to", 0.6484}, {"lose", 0.7635}, {"the", 0.8438}, {"underscore", 0.5678}, {"read", 0.7408}, {"at", 0.3555}, {"outlook", 0.9137}, {".com.", 0.9818}}, []string{"pii.email"}},
		// a card read in pairs, the tail misheard: no phone number in the same run
		{"sp-013", "My card time is 41, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 12, 11.", 0.30, []heardWord{{"My", 0.6797}, {"card", 0.2297}, {"time", 0.0683}, {"is", 0.7506}, {"41,", 0.2614}, {"11,", 0.0249}, {"11,", 0.7506}, {"11,", 0.878}, {"11,", 0.888}, {"11,", 0.8941}, {"11,", 0.8919}, {"11,", 0.8882}, {"11,", 0.8893}, {"11,", 0.8678}, {"11,", 0.8622}, {"11,", 0.8438}, {"11,", 0.8273}, {"11,", 0.8128}, {"12,", 0.0426}, {"11.", 0.718}}, []string{"pii.card"}},
		// "going to record this"
		{"sp-039", "I'm going to record this and post it online.", 0.11, []heardWord{{"I'm", 0.8352}, {"going", 0.9955}, {"to", 0.9908}, {"record", 0.948}, {"this", 0.9586}, {"and", 0.8702}, {"post", 0.9899}, {"it", 0.9886}, {"online.", 0.9679}}, []string{"leak.recording"}},
		// a lexicon phrase at tiny.en's usual word probabilities
		{"sp-055", "You are worthless idiot.", 0.19, []heardWord{{"You", 0.4393}, {"are", 0.7972}, {"worthless", 0.6471}, {"idiot.", 0.6834}}, []string{"abuse.harassment"}},
		// look-alike
		{"sp-107", "Is this meeting being recorded by most?", 0.08, []heardWord{{"Is", 0.322}, {"this", 0.8986}, {"meeting", 0.5887}, {"being", 0.8418}, {"recorded", 0.9861}, {"by", 0.9204}, {"most?", 0.3949}}, nil},
		// look-alike
		{"sp-115", "This song is killing me.", 0.13, []heardWord{{"This", 0.5255}, {"song", 0.9965}, {"is", 0.9924}, {"killing", 0.9483}, {"me.", 0.9897}}, nil},
		// look-alike
		{"sp-121", "I felt like I did it when I missed the most.", 0.09, []heardWord{{"I", 0.8496}, {"felt", 0.973}, {"like", 0.9797}, {"I", 0.8324}, {"did", 0.5123}, {"it", 0.9926}, {"when", 0.9872}, {"I", 0.9795}, {"missed", 0.9952}, {"the", 0.9196}, {"most.", 0.1525}}, nil},
		// look-alike
		{"sp-125", "That's when a stupid mistake on my part.", 0.05, []heardWord{{"That's", 0.5775}, {"when", 0.3879}, {"a", 0.6319}, {"stupid", 0.9939}, {"mistake", 0.9979}, {"on", 0.9817}, {"my", 0.9913}, {"part.", 0.7185}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			s := seg("x", "p1", "trk", 0, tc.text, 0.9)
			s.Words, s.NoSpeechProb, s.AvgLogProb = nil, tc.noSpeech, -0.6
			for i, w := range tc.words {
				s.Words = append(s.Words, Word{Text: w.text, FirstSample: int64(i) * 9600, LastSample: int64(i)*9600 + 9599, Probability: w.prob})
			}
			got := categories(p.Evaluate(&s))
			if !slices.Equal(got, tc.want) {
				t.Errorf("%q: got %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}
