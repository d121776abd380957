package rebroadcast

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/earshot/earshot/policy/fingerprint"
)

// ErrUndecodable is returned (wrapped) when a watched stream gave no audio
// at all: the URL is wrong, the server refuses, or the content is not
// audio ffmpeg can decode.
var ErrUndecodable = errors.New("rebroadcast: outside stream cannot be decoded")

// ErrStreamEnded is returned (wrapped) when a watched stream that gave
// audio stopped: the server closed it, the network dropped, or no audio
// came for the stall timeout. The watcher reconnects.
var ErrStreamEnded = errors.New("rebroadcast: outside stream ended")

// Streams opens outside streams as 16 kHz mono PCM.
type Streams interface {
	Open(ctx context.Context, url string) (PCMStream, error)
}

// PCMStream is an open outside stream.
type PCMStream interface {
	// Read fills p with samples at fingerprint.SampleRate and returns how
	// many; at the end it returns ErrUndecodable or ErrStreamEnded
	// (wrapped), possibly with the last samples.
	Read(p []float32) (int, error)
	Close() error
}

// FFmpeg decodes outside streams with an ffmpeg subprocess: HTTP(S)
// Icecast/Shoutcast (Ogg Vorbis/Opus, MP3, AAC) and HLS playlists, to
// mono float PCM on its stdout.
type FFmpeg struct {
	// Path is the ffmpeg binary; default "ffmpeg" on PATH.
	Path string
	// Stall ends a connection that gave no audio for this long (default
	// 20 s), including a server that accepts and then sends nothing.
	Stall time.Duration
}

// stderrTail bounds what is kept of ffmpeg's messages: the end says why it
// stopped.
const stderrTail = 2048

// Open starts ffmpeg on rawURL (http or https only: a local file or
// another protocol is refused).
func (f FFmpeg) Open(ctx context.Context, rawURL string) (PCMStream, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		scheme := "none"
		if err == nil && u.Scheme != "" {
			scheme = u.Scheme
		}
		return nil, fmt.Errorf("%w: only http and https URLs with a host are watched (scheme %.10q)", ErrUndecodable, scheme)
	}
	bin := f.Path
	if bin == "" {
		bin = "ffmpeg"
	}
	stall := f.Stall
	if stall <= 0 {
		stall = 20 * time.Second
	}
	cmd := exec.CommandContext(ctx, bin,
		"-nostdin", "-hide_banner", "-nostats", "-loglevel", "error",
		// Only network protocols, also for what a playlist points to.
		"-protocol_whitelist", "http,https,tcp,tls,crypto,httpproxy",
		// Only audio containers: an HTML page (a login or error page) would
		// otherwise be probed as some raw format and "decoded" to noise.
		"-format_whitelist", "ogg,mp3,aac,hls,mpegts,mov,mp4,m4a,matroska,webm,flac,wav",
		// A socket that stops answering fails the read instead of hanging
		// (microseconds).
		"-rw_timeout", fmt.Sprint(stall.Microseconds()),
		// Start quickly: live audio has no long header to probe.
		"-analyzeduration", "2000000", "-probesize", "65536",
		"-i", rawURL,
		"-vn", "-sn", "-dn", "-map", "0:a:0",
		"-ac", "1", "-ar", fmt.Sprint(fingerprint.SampleRate), "-f", "f32le", "pipe:1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("rebroadcast: ffmpeg stdout: %w", err)
	}
	s := &ffmpegStream{cmd: cmd, out: out, url: rawURL, stall: stall}
	cmd.Stderr = &s.errs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: starting %s: %w", ErrUndecodable, bin, err)
	}
	// The watchdog: no audio for stall kills ffmpeg, which ends Read.
	s.dog = time.AfterFunc(stall, func() {
		s.mu.Lock()
		s.stalled = true
		s.mu.Unlock()
		_ = cmd.Process.Kill()
	})
	return s, nil
}

// ffmpegStream is one ffmpeg process's output.
type ffmpegStream struct {
	cmd   *exec.Cmd
	out   io.ReadCloser
	url   string
	stall time.Duration
	dog   *time.Timer
	errs  tailBuffer
	buf   []byte

	mu       sync.Mutex
	samples  int64
	stalled  bool
	ended    error
	waitOnce sync.Once
	waitErr  error
}

// Read reads whole samples; ffmpeg writes as fast as the stream comes.
func (s *ffmpegStream) Read(p []float32) (int, error) {
	if s.ended != nil {
		return 0, s.ended
	}
	if len(p) == 0 {
		return 0, nil
	}
	if cap(s.buf) < 4*len(p) {
		s.buf = make([]byte, 4*len(p))
	}
	b := s.buf[:4*len(p)]
	n, err := io.ReadAtLeast(s.out, b, 4)
	n -= n % 4
	if n > 0 {
		s.dog.Reset(s.stall)
		for i := range n / 4 {
			p[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		s.mu.Lock()
		s.samples += int64(n / 4)
		s.mu.Unlock()
	}
	if err != nil {
		s.ended = s.end()
		return n / 4, s.ended
	}
	return n / 4, nil
}

// end waits for ffmpeg and says why the stream ended.
func (s *ffmpegStream) end() error {
	s.dog.Stop()
	werr := s.wait()
	s.mu.Lock()
	got, stalled := s.samples, s.stalled
	s.mu.Unlock()
	why := RedactIn(strings.TrimSpace(s.errs.String()), s.url)
	switch {
	case stalled && got == 0:
		return fmt.Errorf("%w: %s: no audio within %v", ErrUndecodable, RedactURL(s.url), s.stall)
	case stalled:
		return fmt.Errorf("%w: %s: no audio for %v", ErrStreamEnded, RedactURL(s.url), s.stall)
	case got == 0:
		if why == "" && werr != nil {
			why = werr.Error()
		}
		if why == "" {
			why = "no audio in the stream"
		}
		return fmt.Errorf("%w: %s: %s", ErrUndecodable, RedactURL(s.url), lastLine(why))
	default:
		if why == "" {
			why = "end of stream"
		}
		return fmt.Errorf("%w: %s after %.1f s of audio: %s", ErrStreamEnded, RedactURL(s.url), float64(got)/fingerprint.SampleRate, lastLine(why))
	}
}

func (s *ffmpegStream) wait() error {
	s.waitOnce.Do(func() { s.waitErr = s.cmd.Wait() })
	return s.waitErr
}

// Close stops ffmpeg; idempotent.
func (s *ffmpegStream) Close() error {
	s.dog.Stop()
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
	}
	_ = s.wait()
	if s.ended == nil {
		s.ended = fmt.Errorf("%w: closed", ErrStreamEnded)
	}
	return nil
}

// tailBuffer keeps the last stderrTail bytes written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - stderrTail; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// lastLine is the end of ffmpeg's messages, the reason it stopped: its
// last two lines (the last alone often says only "Invalid argument").
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-2, 0):], "; ")
}

// RedactURL returns a URL without what may be a credential: the user and
// password, the query and the fragment ("http://host:8000/live.ogg?…").
// What is not a URL is not shown at all.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(not a URL)"
	}
	out := u.Scheme + "://" + u.Host + u.EscapedPath()
	if u.RawQuery != "" || u.ForceQuery {
		out += "?…"
	}
	return out
}

// RedactIn replaces the URL and its credentials wherever they appear in
// msg (ffmpeg names its input in its errors).
func RedactIn(msg, raw string) string {
	if raw == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, raw, RedactURL(raw))
	u, err := url.Parse(raw)
	if err != nil {
		return msg
	}
	var secrets []string
	if u.User != nil {
		secrets = append(secrets, u.User.String())
		if p, ok := u.User.Password(); ok {
			secrets = append(secrets, p)
		}
	}
	if u.RawQuery != "" {
		secrets = append(secrets, u.RawQuery)
	}
	for _, s := range secrets {
		if len(s) >= 3 {
			msg = strings.ReplaceAll(msg, s, "…")
		}
	}
	return msg
}
