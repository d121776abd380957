// Package httpengine is a transcribe.Engine that calls an OpenAI-compatible
// speech-to-text server: POST {base}/v1/audio/transcriptions, multipart,
// response_format=verbose_json with segment and word timestamps. It works
// with OpenAI's API, faster-whisper servers and whisper.cpp's server (start
// that one with --inference-path /v1/audio/transcriptions, or set Path to
// /inference).
//
// Audio goes out as a WAV file encoded in process. Each call has a timeout
// per attempt, is retried with exponential backoff and jitter on network
// errors, 5xx, 408 and 429 (never on other 4xx), and waits for one of
// Concurrency slots so a slow server is not flooded.
package httpengine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/earshot/earshot/internal/clock"
	"github.com/earshot/earshot/transcribe"
)

// Name is the engine's name in a transcript's processing block.
const Name = "whisper-http"

// Config configures an Engine. Zero fields take the defaults given.
type Config struct {
	// BaseURL is the server's root, e.g. http://127.0.0.1:18000 (required).
	BaseURL string
	// Path is the endpoint under BaseURL (/v1/audio/transcriptions).
	Path string
	// Model is sent as the form's model field and reported by Model()
	// ("whisper-1", which OpenAI requires; local servers mostly ignore it,
	// so set it to the model they really run, e.g. "tiny.en", for the
	// transcript's revision).
	Model string
	// APIKey, when set, is sent as a bearer token. It never appears in
	// errors or logs.
	APIKey string
	// Timeout bounds one attempt, upload to last byte (60 s).
	Timeout time.Duration
	// Retries is how many more attempts follow a retryable failure (3);
	// negative means none.
	Retries int
	// BackoffBase and BackoffMax bound the wait before a retry, which
	// doubles per attempt from BackoffBase (250 ms) up to BackoffMax (8 s),
	// with jitter; a server's Retry-After wins when it is longer, up to
	// 30 s.
	BackoffBase, BackoffMax time.Duration
	// Concurrency is how many requests may be in flight at once (2).
	Concurrency int
	// MaxResponseBytes bounds the answer read (8 MiB).
	MaxResponseBytes int64
	// Client sends the requests (a client with its own transport; its
	// Timeout, if any, applies on top of Timeout).
	Client *http.Client
}

// Engine is the OpenAI-compatible HTTP engine. It is safe for concurrent
// use.
type Engine struct {
	cfg      Config
	endpoint string
	slots    chan struct{}
	client   *http.Client
}

var _ transcribe.Engine = (*Engine)(nil)

// New checks cfg and returns an engine. It sends nothing.
func New(cfg Config) (*Engine, error) {
	if cfg.Path == "" {
		cfg.Path = "/v1/audio/transcriptions"
	}
	if cfg.Model == "" {
		cfg.Model = "whisper-1"
	}
	setDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	setDur(&cfg.Timeout, 60*time.Second)
	setDur(&cfg.BackoffBase, 250*time.Millisecond)
	setDur(&cfg.BackoffMax, 8*time.Second)
	switch {
	case cfg.Retries == 0:
		cfg.Retries = 3
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 2
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = 8 << 20
	}
	var errs []error
	u, err := url.Parse(cfg.BaseURL)
	switch {
	case cfg.BaseURL == "":
		errs = append(errs, errors.New("BaseURL is empty; set it to the server's root, e.g. http://127.0.0.1:18000"))
	case err != nil:
		errs = append(errs, fmt.Errorf("BaseURL: %w", err))
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		errs = append(errs, fmt.Errorf("BaseURL %q is not an http(s) URL with a host", cfg.BaseURL))
	case u.User != nil:
		errs = append(errs, errors.New("BaseURL carries credentials; put the key in APIKey"))
	}
	if !strings.HasPrefix(cfg.Path, "/") {
		errs = append(errs, fmt.Errorf("Path %q must start with /", cfg.Path))
	}
	if cfg.Timeout < 0 || cfg.BackoffBase < 0 || cfg.BackoffMax < cfg.BackoffBase {
		errs = append(errs, errors.New("Timeout and BackoffBase must not be negative, and BackoffMax not below BackoffBase"))
	}
	if cfg.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("Concurrency %d must be at least 1", cfg.Concurrency))
	}
	if cfg.MaxResponseBytes < 1 {
		errs = append(errs, fmt.Errorf("MaxResponseBytes %d must be positive", cfg.MaxResponseBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("httpengine: config: %w", err)
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return &Engine{
		cfg:      cfg,
		endpoint: strings.TrimRight(cfg.BaseURL, "/") + cfg.Path,
		slots:    make(chan struct{}, cfg.Concurrency),
		client:   client,
	}, nil
}

// Name returns "whisper-http".
func (e *Engine) Name() string { return Name }

// Model returns the configured model name.
func (e *Engine) Model() string { return e.cfg.Model }

// Endpoint returns the URL requests go to (it holds no credentials), for
// the start-up log line that says where audio is sent.
func (e *Engine) Endpoint() string { return e.endpoint }

// Local reports whether the server is on this machine (a loopback host).
// Sending audio anywhere else is a choice the operator makes explicitly.
func (e *Engine) Local() bool {
	u, err := url.Parse(e.endpoint)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// StatusError is a non-2xx answer. It keeps only the status: the answer's
// body can echo the request (speech, or a prompt of earlier speech), and
// errors end up in logs and dead letters.
type StatusError struct {
	Status int
	// RetryAfter is the server's Retry-After, when it gave one.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("server answered %d %s", e.Status, http.StatusText(e.Status))
}

// Temporary reports whether the request may succeed when repeated: server
// errors, overload (429) and request timeouts (408).
func (e *StatusError) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout
}

// Transcribe sends one utterance and returns the server's transcript.
func (e *Engine) Transcribe(ctx context.Context, a transcribe.Audio) (transcribe.Result, error) {
	if len(a.Samples) == 0 {
		return transcribe.Result{}, errors.New("httpengine: transcribe: no audio")
	}
	body, contentType, err := e.form(a)
	if err != nil {
		return transcribe.Result{}, fmt.Errorf("httpengine: transcribe: %w", err)
	}
	for attempt := 0; ; attempt++ {
		res, retryAfter, err := e.attempt(ctx, body, contentType, a.Language)
		if err == nil {
			return res, nil
		}
		// The caller's cancellation is named in the error even when it
		// came while the server was answering, so errors.Is tells a
		// stopped call from a failed one.
		if ctx.Err() != nil {
			return transcribe.Result{}, fmt.Errorf("httpengine: transcribe (%d attempts, then %w): %w", attempt+1, ctx.Err(), err)
		}
		if attempt >= e.cfg.Retries || !retryable(err) {
			return transcribe.Result{}, fmt.Errorf("httpengine: transcribe (%d attempts): %w", attempt+1, err)
		}
		if !clock.Sleep(ctx, max(e.backoff(attempt), retryAfter)) {
			return transcribe.Result{}, fmt.Errorf("httpengine: transcribe (%d attempts, then %w): %w", attempt+1, ctx.Err(), err)
		}
	}
}

// attempt makes one request; it returns the server's Retry-After, if any.
func (e *Engine) attempt(ctx context.Context, body []byte, contentType, lang string) (transcribe.Result, time.Duration, error) {
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return transcribe.Result{}, 0, fmt.Errorf("waiting for a free request slot: %w", context.Cause(ctx))
	}
	defer func() { <-e.slots }()
	actx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, e.endpoint, bytes.NewReader(body))
	if err != nil {
		return transcribe.Result{}, 0, permanent{fmt.Errorf("request: %w", err)}
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	if e.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+e.cfg.APIKey)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return transcribe.Result{}, 0, fmt.Errorf("POST %s: %w", e.endpoint, stripURL(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, e.cfg.MaxResponseBytes+1))
	if err != nil {
		return transcribe.Result{}, 0, fmt.Errorf("POST %s: reading the answer: %w", e.endpoint, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := &StatusError{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
		err := fmt.Errorf("POST %s: %w", e.endpoint, se)
		if !se.Temporary() {
			err = permanent{err}
		}
		return transcribe.Result{}, se.RetryAfter, err
	}
	if int64(len(raw)) > e.cfg.MaxResponseBytes {
		return transcribe.Result{}, 0, permanent{fmt.Errorf("POST %s: %w: answer over %d bytes", e.endpoint, ErrBadResponse, e.cfg.MaxResponseBytes)}
	}
	res, err := parseVerbose(raw, lang)
	if err != nil {
		return transcribe.Result{}, 0, permanent{fmt.Errorf("POST %s: %w", e.endpoint, err)}
	}
	return res, 0, nil
}

// form builds the multipart body once, so retries resend the same bytes.
func (e *Engine) form(a transcribe.Audio) ([]byte, string, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="utterance.wav"`)
	h.Set("Content-Type", "audio/wav")
	fw, err := mw.CreatePart(h)
	if err != nil {
		return nil, "", err
	}
	if _, err := fw.Write(encodeWAV(a.Samples)); err != nil {
		return nil, "", err
	}
	fields := [][2]string{
		{"model", e.cfg.Model},
		{"response_format", "verbose_json"},
		{"timestamp_granularities[]", "word"},
		{"timestamp_granularities[]", "segment"},
	}
	if !transcribe.AutoLanguage(a.Language) {
		fields = append(fields, [2]string{"language", a.Language})
	}
	if a.Prompt != "" {
		fields = append(fields, [2]string{"prompt", a.Prompt})
	}
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return nil, "", err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), mw.FormDataContentType(), nil
}

// permanent marks an error that repeating the request will not cure.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

func retryable(err error) bool {
	var p permanent
	return !errors.As(err, &p)
}

// backoff is the wait before retry number attempt+1: exponential with
// "equal jitter" (half fixed, half random), so retries from many workers
// spread out but never come back at once.
func (e *Engine) backoff(attempt int) time.Duration {
	d := e.cfg.BackoffMax
	if attempt < 30 {
		d = min(e.cfg.BackoffBase<<attempt, e.cfg.BackoffMax)
	}
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// retryAfter parses a Retry-After header in seconds (the HTTP-date form is
// not used by transcription servers), capped at 30 s.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(min(n, 30)) * time.Second
}

// stripURL drops the *url.Error wrapper, whose message repeats the URL
// (already in ours) and whose Op is always Post.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
