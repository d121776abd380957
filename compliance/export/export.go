// Package export writes compliance bundles and verifies them.
//
// A bundle is a tar file: decrypted Ogg/Opus audio (one file per stored
// segment), transcripts (JSON and WebVTT, per speaker and track), alerts
// with their moderators' actions, session lifecycle, then manifest.json
// listing the SHA-256 and size of every file, and manifest.sig, the
// deployment's ed25519 signature over manifest.json. Verify checks a bundle
// against a public key the verifier trusts — never one found in the bundle —
// and names every file that fails.
package export

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/earshot/earshot/compliance/archive"
	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/compliance/retention"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
)

// Format names the bundle layout in manifest.json.
const Format = "earshot-export/1"

// Names of the bundle's signed index.
const (
	ManifestFile  = "manifest.json"
	SignatureFile = "manifest.sig"
)

// Source is where a bundle's data comes from: a decrypting store
// (crypt.Store) in deployments.
type Source interface {
	storage.Lister
	storage.Getter
	// Versions tell whose a track is (retention.TrackSpeakers).
	retention.TrackStore
}

// Progress receives the export's progress: Start once with the number of
// files, Add after each file.
type Progress interface {
	Start(files int)
	Add(file string, bytes int64)
}

// Config configures an export.
type Config struct {
	Store    Source             // required
	Keys     event.Keys         // opens the events' protected data
	Signer   ed25519.PrivateKey // required
	Audit    audit.Recorder     // required: every export is audited
	Producer event.Producer     // names the deployment in the manifest
	Progress Progress           // optional
	Now      func() time.Time   // default time.Now
}

// Request says what to export.
type Request struct {
	Room     string `json:"room"`
	Session  string `json:"session,omitempty"`
	Speaker  string `json:"speaker,omitempty"`
	Operator string `json:"operator"`
	Reason   string `json:"reason,omitempty"`
}

// FileEntry is one file of the manifest.
type FileEntry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest is manifest.json.
type Manifest struct {
	Format   string         `json:"format"`
	Created  time.Time      `json:"created"`
	Producer event.Producer `json:"producer"`
	Scope    Request        `json:"scope"`
	// KeyID is the fingerprint of the signing key (KeyID), so a verifier
	// holding several keys can tell which one to use.
	KeyID  string      `json:"key_id"`
	Counts Counts      `json:"counts"`
	Files  []FileEntry `json:"files"`
}

// Counts summarise a bundle.
type Counts struct {
	Sessions    int `json:"sessions"`
	Audio       int `json:"audio_segments"`
	Transcripts int `json:"transcript_segments"`
	Alerts      int `json:"alerts"`
	Actions     int `json:"alert_actions"`
	// Unreadable counts protected fields that could not be opened (their
	// key was destroyed by an erasure): they appear without their content.
	Unreadable int `json:"unreadable"`
}

// Summary describes a written bundle.
type Summary struct {
	Manifest       Manifest
	ManifestSHA256 string
	Bytes          int64
}

// file is one bundle member before it is written.
type file struct {
	path string
	key  string // audio: the object to read; else data holds the bytes
	size int64
	data []byte
}

// Write exports req as a bundle to w and audits it (outcome ok or failed).
func Write(ctx context.Context, cfg Config, req Request, w io.Writer) (Summary, error) {
	if cfg.Store == nil || cfg.Signer == nil || cfg.Audit == nil {
		return Summary{}, errors.New("export: store, signer and audit are required")
	}
	if req.Room == "" {
		return Summary{}, errors.New("export: a room is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sum, err := write(ctx, cfg, req, w)
	subject := req.Room
	for _, s := range []string{req.Session, req.Speaker} {
		if s != "" {
			subject += "/" + s
		}
	}
	e := event.AuditEntry{Operator: req.Operator, Action: audit.ActionExport, Subject: subject, Reason: req.Reason, Outcome: audit.OutcomeOK}
	if err != nil {
		e.Outcome, e.Detail = audit.OutcomeFailed, err.Error()
	} else {
		c := sum.Manifest.Counts
		e.Detail = fmt.Sprintf("%d files, %d bytes; %d sessions, %d audio segments, %d transcript segments, %d alerts, %d actions; manifest sha256 %s, key %s",
			len(sum.Manifest.Files), sum.Bytes, c.Sessions, c.Audio, c.Transcripts, c.Alerts, c.Actions, sum.ManifestSHA256, sum.Manifest.KeyID)
	}
	if aerr := cfg.Audit.Record(ctx, e); aerr != nil {
		err = errors.Join(err, aerr)
	}
	return sum, err
}

func write(ctx context.Context, cfg Config, req Request, w io.Writer) (Summary, error) {
	files, counts, err := plan(ctx, cfg, req)
	if err != nil {
		return Summary{}, err
	}
	if cfg.Progress != nil {
		cfg.Progress.Start(len(files))
	}
	now := cfg.Now().UTC()
	tw := tar.NewWriter(w)
	man := Manifest{Format: Format, Created: now, Producer: cfg.Producer, Scope: req,
		KeyID: KeyID(cfg.Signer.Public().(ed25519.PublicKey)), Counts: counts, Files: []FileEntry{}}
	var total int64
	for _, f := range files {
		data := f.data
		if f.key != "" {
			if data, err = readObject(ctx, cfg.Store, f.key); err != nil {
				return Summary{}, err
			}
		}
		if err := addFile(tw, f.path, data, now); err != nil {
			return Summary{}, err
		}
		s := sha256.Sum256(data)
		man.Files = append(man.Files, FileEntry{Path: f.path, Size: int64(len(data)), SHA256: hex.EncodeToString(s[:])})
		total += int64(len(data))
		if cfg.Progress != nil {
			cfg.Progress.Add(f.path, int64(len(data)))
		}
	}
	mb, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return Summary{}, fmt.Errorf("export: encode manifest: %w", err)
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(cfg.Signer, mb)) + "\n"
	if err := addFile(tw, ManifestFile, mb, now); err != nil {
		return Summary{}, err
	}
	if err := addFile(tw, SignatureFile, []byte(sig), now); err != nil {
		return Summary{}, err
	}
	if err := tw.Close(); err != nil {
		return Summary{}, fmt.Errorf("export: finish bundle: %w", err)
	}
	ms := sha256.Sum256(mb)
	return Summary{Manifest: man, ManifestSHA256: hex.EncodeToString(ms[:]), Bytes: total}, nil
}

func addFile(tw *tar.Writer, name string, data []byte, mod time.Time) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: mod, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return fmt.Errorf("export: write %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("export: write %s: %w", name, err)
	}
	return nil
}

// maxObjectBytes bounds one audio segment read into memory (a 30 s Opus
// segment is ~100 KB; ten minutes of high-rate Opus stays far below).
const maxObjectBytes = 256 << 20

func readObject(ctx context.Context, s storage.Getter, key string) ([]byte, error) {
	rc, _, err := s.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("export: read %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxObjectBytes+1))
	if err != nil {
		return nil, fmt.Errorf("export: read %s: %w", key, err)
	}
	if len(b) > maxObjectBytes {
		return nil, fmt.Errorf("export: %s is over %d bytes", key, maxObjectBytes)
	}
	return b, nil
}

// Transcript is one line of a transcript file.
type Transcript struct {
	EventID     string                 `json:"event_id"`
	Revision    string                 `json:"revision"`
	Speaker     string                 `json:"speaker"`
	Track       string                 `json:"track"`
	FirstSample int64                  `json:"first_sample"`
	LastSample  int64                  `json:"last_sample"`
	Start       time.Time              `json:"start"`
	End         time.Time              `json:"end"`
	Language    string                 `json:"language,omitempty"`
	Text        *string                `json:"text"` // null when unreadable
	Words       []event.TranscriptWord `json:"words,omitempty"`
	Unreadable  string                 `json:"unreadable,omitempty"`
}

// Alert is one alert of an alerts file, with its actions.
type Alert struct {
	EventID     string            `json:"event_id"`
	Time        time.Time         `json:"time"`
	Speaker     string            `json:"speaker"`
	Track       string            `json:"track,omitempty"`
	FirstSample int64             `json:"first_sample"`
	LastSample  int64             `json:"last_sample"`
	Alert       event.Alert       `json:"alert"`
	Data        *event.AlertData  `json:"data"` // null when unreadable
	Unreadable  string            `json:"unreadable,omitempty"`
	Actions     []Action          `json:"actions"`
	Producer    event.Producer    `json:"producer"`
	Processing  *event.Processing `json:"processing,omitempty"`
}

// Action is a moderator's action on an alert.
type Action struct {
	EventID    string    `json:"event_id"`
	Time       time.Time `json:"time"`
	Action     string    `json:"action"`
	Operator   string    `json:"operator"`
	Note       *string   `json:"note"`
	Unreadable string    `json:"unreadable,omitempty"`
}

// sessionFiles collects one session's events.
type sessionFiles struct {
	lifecycle   []*event.Envelope
	transcripts map[string]map[string][]Transcript // by speaker/track, then revision
	// The transcript events by speaker/track, and each one's line, for
	// the preferred view of a track transcribed more than once.
	transcriptEvents map[string][]*event.Envelope
	lineOf           map[*event.Envelope]Transcript
	alerts           []*Alert
	origin           time.Time // earliest timeline start, for WebVTT times
}

// plan reads the scope's events and lists its audio. Everything but audio
// is rendered in memory here; audio is read while writing.
func plan(ctx context.Context, cfg Config, req Request) ([]file, Counts, error) {
	var c Counts
	sessions := map[string]*sessionFiles{}
	sess := func(id string) *sessionFiles {
		s := sessions[id]
		if s == nil {
			s = &sessionFiles{transcripts: map[string]map[string][]Transcript{},
				transcriptEvents: map[string][]*event.Envelope{}, lineOf: map[*event.Envelope]Transcript{}}
			sessions[id] = s
		}
		return s
	}
	seeOrigin := func(s *sessionFiles, t time.Time) {
		if !t.IsZero() && (s.origin.IsZero() || t.Before(s.origin)) {
			s.origin = t
		}
	}
	// Session-wide events (no speaker) belong to a speaker's export too.
	inScope := func(session, speaker string) bool {
		return session != "" && (req.Session == "" || session == req.Session) &&
			(req.Speaker == "" || speaker == "" || speaker == req.Speaker)
	}
	alerts := map[string]*Alert{}
	var actions []*event.Envelope
	prefix := archive.ScopePrefix(req.Room, req.Session, "")
	for e, err := range archive.Events(ctx, cfg.Store, prefix) {
		if err != nil {
			return nil, c, fmt.Errorf("export: %w", err)
		}
		if e.Type == event.TypeAlertAction {
			actions = append(actions, e) // kept when their alert is
			continue
		}
		if !inScope(e.Session, e.Speaker) {
			continue
		}
		s := sess(e.Session)
		switch e.Type {
		case event.TypeTranscript:
			if e.Speaker == "" && req.Speaker != "" {
				continue
			}
			t := transcript(ctx, cfg.Keys, e, &c)
			seeOrigin(s, t.Start)
			k := e.Speaker + "/" + t.Track
			if s.transcripts[k] == nil {
				s.transcripts[k] = map[string][]Transcript{}
			}
			s.transcripts[k][e.Revision] = append(s.transcripts[k][e.Revision], t)
			s.transcriptEvents[k] = append(s.transcriptEvents[k], e)
			s.lineOf[e] = t
			c.Transcripts++
		case event.TypeAlert:
			if e.Speaker == "" && req.Speaker != "" {
				continue
			}
			a := alert(ctx, cfg.Keys, e, &c)
			alerts[e.EventID] = a
			s.alerts = append(s.alerts, a)
			c.Alerts++
		default:
			if strings.HasPrefix(string(e.Type), "lifecycle.") {
				s.lifecycle = append(s.lifecycle, e)
			}
		}
	}
	if req.Session != "" {
		// Actions may be archived under the room only (no session).
		for e, err := range archive.Events(ctx, cfg.Store, archive.ScopePrefix(req.Room, archive.None, ""), event.TypeAlertAction) {
			if err != nil {
				return nil, c, fmt.Errorf("export: %w", err)
			}
			actions = append(actions, e)
		}
	}
	seen := map[string]bool{}
	for _, e := range actions {
		var p event.AlertAction
		if seen[e.EventID] || e.DecodePayload(&p) != nil || alerts[p.Alert] == nil {
			continue
		}
		seen[e.EventID] = true
		act := Action{EventID: e.EventID, Time: e.Time, Action: p.Action, Operator: p.Operator}
		var d event.AlertActionData
		if e.Protected != nil {
			if err := e.Open(ctx, cfg.Keys, &d); err != nil {
				act.Unreadable = unreadable(err)
				c.Unreadable++
			} else {
				act.Note = &d.Note
			}
		}
		a := alerts[p.Alert]
		a.Actions = append(a.Actions, act)
		c.Actions++
	}

	var files []file
	// Audio: every stored segment of the scope, as stored (decrypted).
	audioPrefix := retention.AudioPrefix + req.Room + "/"
	if req.Session != "" {
		audioPrefix += req.Session + "/"
	}
	var speakers map[string]string
	if req.Speaker != "" {
		var err error
		if speakers, err = retention.TrackSpeakers(ctx, cfg.Store, audioPrefix); err != nil {
			return nil, c, fmt.Errorf("export: %w", err)
		}
	}
	for oi, err := range cfg.Store.List(ctx, audioPrefix) {
		if err != nil {
			return nil, c, fmt.Errorf("export: list audio: %w", err)
		}
		a, ok := retention.ParseAudioKey(oi.Key)
		if !ok || (req.Session != "" && a.Session != req.Session) {
			continue
		}
		if req.Speaker != "" && speakers[a.Track] != req.Speaker {
			continue
		}
		sess(a.Session)
		files = append(files, file{path: "audio/" + a.Session + "/" + a.Track + "/" + path.Base(oi.Key), key: oi.Key, size: oi.Size})
		c.Audio++
	}

	for _, id := range slices.Sorted(maps.Keys(sessions)) {
		s := sessions[id]
		c.Sessions++
		if len(s.lifecycle) > 0 {
			sort.SliceStable(s.lifecycle, func(i, j int) bool { return s.lifecycle[i].Time.Before(s.lifecycle[j].Time) })
			b, err := json.MarshalIndent(s.lifecycle, "", "  ")
			if err != nil {
				return nil, c, fmt.Errorf("export: encode lifecycle: %w", err)
			}
			files = append(files, file{path: "sessions/" + id + ".json", data: b})
		}
		for _, k := range slices.Sorted(maps.Keys(s.transcripts)) {
			// A track transcribed more than once (settled, final, a
			// replay) has several revisions of the same speech: one file
			// each (named by revision), never interleaved, and one
			// holding the text a reader shows, one per stretch of speech
			// (event.PreferredTranscripts: final, then settled, then live).
			revs := s.transcripts[k]
			base := "transcripts/" + id + "/" + strings.ReplaceAll(k, "/", "-")
			add := func(name string, ts []Transcript) error {
				b, err := json.MarshalIndent(ts, "", "  ")
				if err != nil {
					return fmt.Errorf("export: encode transcript: %w", err)
				}
				files = append(files, file{path: name + ".json", data: b}, file{path: name + ".vtt", data: webVTT(ts, s.origin)})
				return nil
			}
			if len(revs) > 1 {
				var ts []Transcript
				for _, e := range event.PreferredTranscripts(s.transcriptEvents[k]) {
					ts = append(ts, s.lineOf[e])
				}
				if err := add(base, ts); err != nil {
					return nil, c, err
				}
			}
			for _, rev := range slices.Sorted(maps.Keys(revs)) {
				ts := revs[rev]
				sort.SliceStable(ts, func(i, j int) bool { return ts[i].FirstSample < ts[j].FirstSample })
				name := base
				if len(revs) > 1 {
					name += "." + rev
				}
				if err := add(name, ts); err != nil {
					return nil, c, err
				}
			}
		}
		if len(s.alerts) > 0 {
			sort.SliceStable(s.alerts, func(i, j int) bool { return s.alerts[i].Time.Before(s.alerts[j].Time) })
			for _, a := range s.alerts {
				sort.SliceStable(a.Actions, func(i, j int) bool { return a.Actions[i].Time.Before(a.Actions[j].Time) })
			}
			b, err := json.MarshalIndent(s.alerts, "", "  ")
			if err != nil {
				return nil, c, fmt.Errorf("export: encode alerts: %w", err)
			}
			files = append(files, file{path: "alerts/" + id + ".json", data: b})
		}
	}
	return files, c, nil
}

func unreadable(err error) string {
	if errors.Is(err, event.ErrSealed) {
		return "sealed and no keys configured"
	}
	return "cannot be opened (key destroyed or data altered)"
}

func transcript(ctx context.Context, keys event.Keys, e *event.Envelope, c *Counts) Transcript {
	t := Transcript{EventID: e.EventID, Revision: e.Revision, Speaker: e.Speaker}
	if tl := e.Timeline; tl != nil {
		t.Track, t.FirstSample, t.LastSample, t.Start, t.End = tl.Track, tl.FirstSample, tl.LastSample, tl.Start(), tl.End()
	}
	var p event.TranscriptSegment
	if e.DecodePayload(&p) == nil {
		t.Language = p.Language
	}
	var d event.TranscriptSegmentData
	if err := e.Open(ctx, keys, &d); err != nil {
		t.Unreadable = unreadable(err)
		c.Unreadable++
		return t
	}
	t.Text, t.Words = &d.Text, d.Words
	return t
}

func alert(ctx context.Context, keys event.Keys, e *event.Envelope, c *Counts) *Alert {
	a := &Alert{EventID: e.EventID, Time: e.Time, Speaker: e.Speaker, Actions: []Action{}, Producer: e.Producer, Processing: e.Processing}
	if tl := e.Timeline; tl != nil {
		a.Track, a.FirstSample, a.LastSample = tl.Track, tl.FirstSample, tl.LastSample
	}
	_ = e.DecodePayload(&a.Alert)
	var d event.AlertData
	if err := e.Open(ctx, keys, &d); err != nil {
		a.Unreadable = unreadable(err)
		c.Unreadable++
		return a
	}
	a.Data = &d
	return a
}

// webVTT renders transcript lines as WebVTT cues, timed from origin (the
// session's earliest transcript start).
func webVTT(ts []Transcript, origin time.Time) []byte {
	var b bytes.Buffer
	b.WriteString("WEBVTT\n")
	for i, t := range ts {
		if t.Text == nil || t.Start.IsZero() {
			continue
		}
		fmt.Fprintf(&b, "\n%d\n%s --> %s\n<v %s>%s\n", i+1, vttTime(t.Start.Sub(origin)), vttTime(t.End.Sub(origin)), t.Speaker, vttText(*t.Text))
	}
	return b.Bytes()
}

func vttTime(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	ms := d.Milliseconds()
	return fmt.Sprintf("%02d:%02d:%02d.%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

// vttText keeps a cue on its lines: "-->" and blank lines would end it.
func vttText(s string) string {
	s = strings.ReplaceAll(s, "-->", "->")
	s = strings.ReplaceAll(s, "&", "&amp;")
	s = strings.ReplaceAll(s, "<", "&lt;")
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	return strings.Join(lines, "\n")
}
