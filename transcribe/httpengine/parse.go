package httpengine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/earshot/earshot/transcribe"
)

// ErrBadResponse is returned (wrapped) for a 2xx answer that is not a usable
// verbose_json transcription.
var ErrBadResponse = errors.New("httpengine: bad response")

type wireWord struct {
	Word        string   `json:"word"`
	Start       float64  `json:"start"`
	End         float64  `json:"end"`
	Probability *float64 `json:"probability"`
}

type wireSegment struct {
	Start        float64    `json:"start"`
	End          float64    `json:"end"`
	Text         string     `json:"text"`
	AvgLogprob   float64    `json:"avg_logprob"`
	NoSpeechProb float64    `json:"no_speech_prob"`
	Words        []wireWord `json:"words"`
}

type wireResponse struct {
	Text                *string         `json:"text"`
	Language            string          `json:"language"`
	LanguageProbability *float64        `json:"language_probability"`
	Duration            float64         `json:"duration"`
	Segments            []wireSegment   `json:"segments"`
	Words               []wireWord      `json:"words"`
	Error               json.RawMessage `json:"error"`
}

// parseVerbose reads a verbose_json transcription in any of the shapes the
// servers write:
//   - OpenAI and faster-whisper servers: segments, plus words at the top
//     level (timestamp_granularities[]=word); language as a name
//     ("english") or a code ("en").
//   - whisper.cpp's server: words inside each segment, one per token with
//     its leading space (" Hel", "lo"), no no_speech_prob, and errors
//     reported with status 200 as {"error": "..."}.
//
// requested is the language asked for ("" or "auto" to detect).
func parseVerbose(body []byte, requested string) (transcribe.Result, error) {
	var w wireResponse
	if err := json.Unmarshal(body, &w); err != nil {
		return transcribe.Result{}, fmt.Errorf("%w: not JSON: %w", ErrBadResponse, err)
	}
	if len(w.Error) > 0 && !bytes.Equal(w.Error, []byte("null")) {
		return transcribe.Result{}, fmt.Errorf("%w: server reported an error (%d bytes, not kept: it may echo speech)", ErrBadResponse, len(w.Error))
	}
	if w.Text == nil && w.Segments == nil {
		return transcribe.Result{}, fmt.Errorf("%w: no text and no segments (not verbose_json?)", ErrBadResponse)
	}
	res := transcribe.Result{Language: languageCode(w.Language)}
	if res.Language == "" && !transcribe.AutoLanguage(requested) {
		res.Language = requested
	}
	if p := w.LanguageProbability; p != nil {
		res.LanguageProb = clamp01(*p)
	}
	for _, s := range w.Segments {
		seg := transcribe.Segment{
			Text:         s.Text,
			AvgLogProb:   min(s.AvgLogprob, 0),
			NoSpeechProb: clamp01(s.NoSpeechProb),
		}
		seg.Start, seg.End = times(s.Start, s.End)
		seg.Words = mergePieces(s.Words)
		res.Segments = append(res.Segments, seg)
	}
	if len(res.Segments) == 0 && w.Text != nil && strings.TrimSpace(*w.Text) != "" {
		seg := transcribe.Segment{Text: *w.Text}
		seg.Start, seg.End = times(0, w.Duration)
		res.Segments = append(res.Segments, seg)
	}
	if len(w.Words) > 0 && !anyWords(res.Segments) && len(res.Segments) > 0 {
		assignWords(res.Segments, mergePieces(w.Words))
	}
	return res, nil
}

func anyWords(segs []transcribe.Segment) bool {
	for _, s := range segs {
		if len(s.Words) > 0 {
			return true
		}
	}
	return false
}

// times makes a time range well formed: not negative, end not before start.
func times(start, end float64) (float64, float64) {
	start = max(start, 0)
	return start, max(end, start)
}

func clamp01(p float64) float64 { return max(0, min(1, p)) }

// mergePieces turns a server's word list into words. whisper.cpp lists
// tokens, a new word starting with a space; OpenAI and faster-whisper list
// whole words (with or without the space). When any piece after the first
// starts with a space, pieces without one continue the previous word.
func mergePieces(pieces []wireWord) []transcribe.Word {
	spaced := false
	for i, p := range pieces {
		if i > 0 && startsWithSpace(p.Word) {
			spaced = true
			break
		}
	}
	var out []transcribe.Word
	for i, p := range pieces {
		start, end := times(p.Start, p.End)
		prob := 1.0
		if p.Probability != nil {
			prob = clamp01(*p.Probability)
		}
		if spaced && i > 0 && len(out) > 0 && !startsWithSpace(p.Word) {
			w := &out[len(out)-1]
			w.Word += p.Word
			w.Start, w.End = min(w.Start, start), max(w.End, end)
			w.Prob = min(w.Prob, prob)
			continue
		}
		out = append(out, transcribe.Word{Word: p.Word, Start: start, End: end, Prob: prob})
	}
	n := 0
	for _, w := range out {
		w.Word = strings.TrimSpace(w.Word)
		if w.Word != "" {
			out[n] = w
			n++
		}
	}
	return out[:n]
}

func startsWithSpace(s string) bool {
	for _, r := range s {
		return unicode.IsSpace(r)
	}
	return false
}

// assignWords gives each top-level word to the segment holding its middle,
// or to the nearest segment.
func assignWords(segs []transcribe.Segment, words []transcribe.Word) {
	for _, w := range words {
		mid := (w.Start + w.End) / 2
		best, bestD := 0, -1.0
		for i, s := range segs {
			d := 0.0
			switch {
			case mid < s.Start:
				d = s.Start - mid
			case mid > s.End:
				d = mid - s.End
			}
			if bestD < 0 || d < bestD {
				best, bestD = i, d
			}
		}
		segs[best].Words = append(segs[best].Words, w)
	}
	for i := range segs {
		ws := segs[i].Words
		sort.SliceStable(ws, func(a, b int) bool { return ws[a].Start < ws[b].Start })
	}
}

// languageCode turns a language as servers report it ("en", "english",
// "English") into its ISO 639-1 code; unknown names pass through in lower
// case.
func languageCode(lang string) string {
	l := strings.ToLower(strings.TrimSpace(lang))
	if code, ok := whisperLanguages[l]; ok {
		return code
	}
	return l
}

// whisperLanguages maps the language names Whisper reports to their codes
// (openai/whisper's tokenizer table).
var whisperLanguages = func() map[string]string {
	const table = "en english,zh chinese,de german,es spanish,ru russian,ko korean,fr french,ja japanese," +
		"pt portuguese,tr turkish,pl polish,ca catalan,nl dutch,ar arabic,sv swedish,it italian," +
		"id indonesian,hi hindi,fi finnish,vi vietnamese,he hebrew,uk ukrainian,el greek,ms malay," +
		"cs czech,ro romanian,da danish,hu hungarian,ta tamil,no norwegian,th thai,ur urdu," +
		"hr croatian,bg bulgarian,lt lithuanian,la latin,mi maori,ml malayalam,cy welsh,sk slovak," +
		"te telugu,fa persian,lv latvian,bn bengali,sr serbian,az azerbaijani,sl slovenian,kn kannada," +
		"et estonian,mk macedonian,br breton,eu basque,is icelandic,hy armenian,ne nepali,mn mongolian," +
		"bs bosnian,kk kazakh,sq albanian,sw swahili,gl galician,mr marathi,pa punjabi,si sinhala," +
		"km khmer,sn shona,yo yoruba,so somali,af afrikaans,oc occitan,ka georgian,be belarusian," +
		"tg tajik,sd sindhi,gu gujarati,am amharic,yi yiddish,lo lao,uz uzbek,fo faroese," +
		"ht haitian creole,ps pashto,tk turkmen,nn nynorsk,mt maltese,sa sanskrit,lb luxembourgish," +
		"my myanmar,bo tibetan,tl tagalog,mg malagasy,as assamese,tt tatar,haw hawaiian,ln lingala," +
		"ha hausa,ba bashkir,jw javanese,su sundanese,yue cantonese"
	m := map[string]string{}
	for _, e := range strings.Split(table, ",") {
		code, name, _ := strings.Cut(e, " ")
		m[name] = code
	}
	return m
}()
