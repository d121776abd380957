package httpengine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/earshot/earshot/transcribe"
)

const okBody = `{"task":"transcribe","language":"english","duration":1.0,"text":"Hello world.",
 "segments":[{"id":0,"start":0.0,"end":1.0,"text":" Hello world.","avg_logprob":-0.2,"no_speech_prob":0.01}],
 "words":[{"word":"Hello","start":0.1,"end":0.4},{"word":"world.","start":0.5,"end":0.9}]}`

func audio() transcribe.Audio {
	return transcribe.Audio{Samples: make([]float32, 16000), Language: "en"}
}

func newEngine(t *testing.T, url string, cfg Config) *Engine {
	t.Helper()
	cfg.BaseURL = url
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase, cfg.BackoffMax = time.Millisecond, 5*time.Millisecond
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestTranscribeSendsTheForm(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/audio/transcriptions" || r.Method != http.MethodPost {
			http.Error(w, "wrong route "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		if got := r.Header.Get("Authorization"); got != "Bearer sk-test" {
			http.Error(w, "auth "+got, http.StatusUnauthorized)
			return
		}
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f := r.MultipartForm
		want := map[string][]string{
			"model":                     {"tiny.en"},
			"response_format":           {"verbose_json"},
			"timestamp_granularities[]": {"word", "segment"},
			"language":                  {"en"},
			"prompt":                    {"Earshot"},
		}
		for k, v := range want {
			if fmt.Sprint(f.Value[k]) != fmt.Sprint(v) {
				http.Error(w, fmt.Sprintf("field %s = %v, want %v", k, f.Value[k], v), http.StatusBadRequest)
				return
			}
		}
		file, _, err := r.FormFile("file")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		wav, _ := io.ReadAll(file)
		if len(wav) != 44+2*16000 || string(wav[:4]) != "RIFF" || string(wav[8:12]) != "WAVE" ||
			binary.LittleEndian.Uint32(wav[24:]) != 16000 || binary.LittleEndian.Uint16(wav[34:]) != 16 {
			http.Error(w, "bad wav", http.StatusBadRequest)
			return
		}
		io.WriteString(w, okBody)
	}))
	defer srv.Close()
	e := newEngine(t, srv.URL+"/", Config{Model: "tiny.en", APIKey: "sk-test"})
	a := audio()
	a.Prompt = "Earshot"
	res, err := e.Transcribe(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if res.Language != "en" || len(res.Segments) != 1 || len(res.Segments[0].Words) != 2 || res.Segments[0].Words[1].Word != "world." {
		t.Fatalf("result %+v", res)
	}
	if e.Name() != "whisper-http" || e.Model() != "tiny.en" || !e.Local() || e.Endpoint() != srv.URL+"/v1/audio/transcriptions" {
		t.Fatalf("name %s model %s local %v endpoint %s", e.Name(), e.Model(), e.Local(), e.Endpoint())
	}
}

func TestAutoLanguageIsNotSent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("language") != "" {
			http.Error(w, "language sent", http.StatusBadRequest)
			return
		}
		io.WriteString(w, okBody)
	}))
	defer srv.Close()
	e := newEngine(t, srv.URL, Config{})
	for _, lang := range []string{"", "auto"} {
		a := audio()
		a.Language = lang
		if _, err := e.Transcribe(context.Background(), a); err != nil {
			t.Fatalf("language %q: %v", lang, err)
		}
	}
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []int // answers in turn; 200 ends
		retries  int
		wantErr  bool
		attempts int32
	}{
		{"503 then ok", []int{503, 502, 200}, 3, false, 3},
		{"429 then ok", []int{429, 200}, 3, false, 2},
		{"500 until out of retries", []int{500, 500, 500}, 2, true, 3},
		{"400 is not retried", []int{400, 200}, 3, true, 1},
		{"404 is not retried", []int{404, 200}, 3, true, 1},
		{"401 is not retried", []int{401, 200}, 3, true, 1},
		{"no retries", []int{503, 200}, -1, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				st := tc.statuses[min(i, len(tc.statuses)-1)]
				if st != 200 {
					if st == 429 {
						w.Header().Set("Retry-After", "0")
					}
					http.Error(w, `{"error":{"message":"busy; prompt was: `+speechCanary+strings.Repeat("x", 2000)+`"}}`, st)
					return
				}
				io.WriteString(w, okBody)
			}))
			defer srv.Close()
			e := newEngine(t, srv.URL, Config{Retries: tc.retries})
			_, err := e.Transcribe(context.Background(), audio())
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got := n.Load(); got != tc.attempts {
				t.Fatalf("%d attempts, want %d", got, tc.attempts)
			}
			if err != nil {
				var se *StatusError
				if !errors.As(err, &se) || se.Status != tc.statuses[tc.attempts-1] {
					t.Fatalf("err %v does not carry the status", err)
				}
				if strings.Contains(err.Error(), speechCanary) || strings.Contains(err.Error(), "busy") {
					t.Fatalf("the server's answer reached the error: %q", err)
				}
			}
		})
	}
}

func TestNetworkErrorsAreRetried(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			// Drop the connection without an answer.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		io.WriteString(w, okBody)
	}))
	defer srv.Close()
	e := newEngine(t, srv.URL, Config{})
	if _, err := e.Transcribe(context.Background(), audio()); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 2 {
		t.Fatalf("%d attempts, want 2", n.Load())
	}
}

func TestTimeoutPerAttempt(t *testing.T) {
	var n atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	e := newEngine(t, srv.URL, Config{Timeout: 50 * time.Millisecond, Retries: 1})
	_, err := e.Transcribe(context.Background(), audio())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if n.Load() != 2 {
		t.Fatalf("%d attempts, want 2 (a timed-out attempt is retried)", n.Load())
	}
}

func TestCallerCancelStopsRetries(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Error(w, "down", 503)
	}))
	defer srv.Close()
	e := newEngine(t, srv.URL, Config{Retries: 100, BackoffBase: time.Hour, BackoffMax: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for n.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := e.Transcribe(ctx, audio())
	if !errors.Is(err, context.Canceled) || n.Load() != 1 {
		t.Fatalf("err = %v after %d attempts; want Canceled after 1", err, n.Load())
	}
}

func TestConcurrencyLimit(t *testing.T) {
	var inFlight, peak atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := inFlight.Add(1)
		for {
			p := peak.Load()
			if now <= p || peak.CompareAndSwap(p, now) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		inFlight.Add(-1)
		io.WriteString(w, okBody)
	}))
	defer srv.Close()
	e := newEngine(t, srv.URL, Config{Concurrency: 3})
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for range 12 {
		wg.Go(func() {
			_, err := e.Transcribe(context.Background(), audio())
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if p := peak.Load(); p != 3 {
		t.Fatalf("peak of %d requests in flight, want 3", p)
	}
}

func TestBadAnswersAreNotRetried(t *testing.T) {
	for name, body := range map[string]string{
		"malformed JSON":          `{"text": "hello", "segments": [`,
		"not verbose":             `{"ok": true}`,
		"whisper.cpp error (200)": `{"error":"failed to process audio"}`,
		"error echoing speech":    `{"error":"prompt too long: ` + speechCanary + `"}`,
		"trailing garbage":        okBody + `}`,
		"bad number":              `{"text":"x","segments":[{"start":1e999}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				io.WriteString(w, body)
			}))
			defer srv.Close()
			e := newEngine(t, srv.URL, Config{})
			_, err := e.Transcribe(context.Background(), audio())
			if !errors.Is(err, ErrBadResponse) || n.Load() != 1 {
				t.Fatalf("err = %v after %d attempts; want ErrBadResponse after 1", err, n.Load())
			}
			if strings.Contains(err.Error(), speechCanary) {
				t.Fatalf("the server's answer reached the error: %q", err)
			}
		})
	}
}

// speechCanary stands for speech a server may echo in an error answer
// (an engine given a prompt of earlier speech): errors reach logs and dead
// letters, so it must never appear in one.
const speechCanary = "my pin is 4471 canary"

func TestResponseSizeLimit(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"text":"`+strings.Repeat("a", 4096)+`"}`)
	}))
	defer srv.Close()
	e := newEngine(t, srv.URL, Config{MaxResponseBytes: 1024})
	if _, err := e.Transcribe(context.Background(), audio()); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("err = %v, want ErrBadResponse for an oversized answer", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{BaseURL: "127.0.0.1:18000"},
		{BaseURL: "ftp://host"},
		{BaseURL: "http://user:pw@host"},
		{BaseURL: "http://host", Path: "v1"},
		{BaseURL: "http://host", Concurrency: -1},
		{BaseURL: "http://host", BackoffBase: time.Second, BackoffMax: time.Millisecond},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	e, err := New(Config{BaseURL: "https://api.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Local() {
		t.Fatal("a remote host reported as local")
	}
	if _, err := e.Transcribe(context.Background(), transcribe.Audio{}); err == nil {
		t.Fatal("empty audio accepted")
	}
}
