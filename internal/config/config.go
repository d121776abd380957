// Package config loads Earshot's configuration: defaults, then a YAML file
// decoded strictly (an unknown key is an error, so a typo never silently
// falls back to a default), then EARSHOT_* environment variables, then
// command-line overrides. Validate reports every problem at once, each with
// what to change.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration. The YAML keys are the field tags; the
// environment variable for a key is EARSHOT_ plus its path in upper case
// with '.' as '_' (storage.s3.endpoint -> EARSHOT_STORAGE_S3_ENDPOINT).
type Config struct {
	// DataDir holds local state: the spool, the embedded store, generated
	// secrets.
	DataDir    string     `yaml:"data_dir"`
	Log        Log        `yaml:"log"`
	Kafka      Kafka      `yaml:"kafka"`
	Storage    Storage    `yaml:"storage"`
	Identity   Identity   `yaml:"identity"`
	Ingest     Ingest     `yaml:"ingest"`
	Transcribe Transcribe `yaml:"transcribe"`
	Policy     Policy     `yaml:"policy"`
	Alerts     Alerts     `yaml:"alerts"`
	Serve      Serve      `yaml:"serve"`
	Crypto     Crypto     `yaml:"crypto"`
	Retention  Retention  `yaml:"retention"`
	Compliance Compliance `yaml:"compliance"`
	Metrics    Metrics    `yaml:"metrics"`

	Rebroadcast Rebroadcast `yaml:"rebroadcast"`
}

// Log configures log/slog.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
	// Transcripts puts transcript text in the logs. Speech is personal
	// data, so it is off by default; the demo turns it on.
	Transcripts bool `yaml:"transcripts"`
}

// Kafka configures the event bus.
type Kafka struct {
	// Embedded runs an in-process Kafka-protocol broker that keeps events in
	// memory: for evaluation only. Production sets Brokers instead.
	Embedded     bool          `yaml:"embedded"`
	Brokers      []string      `yaml:"brokers"`
	ClientID     string        `yaml:"client_id"`
	BatchTimeout time.Duration `yaml:"batch_timeout"`
	Partitions   int           `yaml:"partitions"` // for topics Earshot creates
	// ReplicationFactor is the replica count of topics Earshot creates;
	// 0 leaves it to the broker's default.replication.factor.
	ReplicationFactor int  `yaml:"replication_factor"`
	CreateTopics      bool `yaml:"create_topics"`
	// TLS and SASL secure the connections to a real cluster (see
	// kafka_sec.go); the embedded broker takes neither.
	TLS  KafkaTLS  `yaml:"tls"`
	SASL KafkaSASL `yaml:"sasl"`
}

// Storage configures the object store.
type Storage struct {
	Backend string       `yaml:"backend"` // local or s3
	Local   LocalStorage `yaml:"local"`
	S3      S3Storage    `yaml:"s3"`
}

// LocalStorage is the local-directory store.
type LocalStorage struct {
	Dir string `yaml:"dir"` // default <data_dir>/store
}

// S3Storage is an S3-compatible store (AWS S3, MinIO, versitygw...).
type S3Storage struct {
	Endpoint      string `yaml:"endpoint"` // host[:port]
	Region        string `yaml:"region"`
	Bucket        string `yaml:"bucket"`
	Prefix        string `yaml:"prefix"`
	AccessKey     Secret `yaml:"access_key"`
	SecretKey     Secret `yaml:"secret_key"`
	SecretKeyFile string `yaml:"secret_key_file"`
	UseTLS        bool   `yaml:"use_tls"`
	PathStyle     bool   `yaml:"path_style"`
	SSE           string `yaml:"sse"` // "", "s3" or "kms:<key id>"
	CreateBucket  bool   `yaml:"create_bucket"`
	Versioning    bool   `yaml:"versioning"`
	ObjectLock    bool   `yaml:"object_lock"`
}

// Identity configures pseudonymisation.
type Identity struct {
	// SecretFile holds the hex HMAC secret; created on first start when
	// missing (embedded setups) unless RequireSecret is set.
	SecretFile    string `yaml:"secret_file"`
	RequireSecret bool   `yaml:"require_secret"`
	KeyVersion    int    `yaml:"key_version"`
}

// Ingest configures the listener bots.
type Ingest struct {
	Janus          Janus         `yaml:"janus"`
	BotDisplayName string        `yaml:"bot_display_name"`
	Rooms          RoomSelection `yaml:"rooms"`
	ChunkDuration  time.Duration `yaml:"chunk_duration"`
	SegmentLength  time.Duration `yaml:"segment_duration"`
	SpoolDir       string        `yaml:"spool_dir"` // default <data_dir>/spool
	Lease          Lease         `yaml:"lease"`
	Participants   Participants  `yaml:"participants"`
}

// Janus configures the Janus connector.
type Janus struct {
	URL string `yaml:"url"` // HTTP API base, e.g. http://janus:8088/janus
	// Interface limits ICE to one network interface (empty: all).
	Interface string `yaml:"interface"`
	// IdentityField picks what identifies a participant: "feed_id" (the id
	// the application sets) or "display" (the display name).
	IdentityField string `yaml:"identity_field"`
	VideoRoom     bool   `yaml:"videoroom"`
	AudioBridge   bool   `yaml:"audiobridge"`
}

// RoomSelection says which rooms the bots join.
type RoomSelection struct {
	Mode    string   `yaml:"mode"` // all, list or pattern
	List    []string `yaml:"list"`
	Pattern string   `yaml:"pattern"` // regular expression on the room ID
	Skip    []string `yaml:"skip"`    // rooms never recorded
}

// Transcribe configures the transcription workers.
type Transcribe struct {
	Engine      string        `yaml:"engine"` // http or whisper
	URL         Secret        `yaml:"url"`    // OpenAI-compatible server base URL (may carry a key)
	Model       string        `yaml:"model"`
	APIKeyFile  string        `yaml:"api_key_file"`
	Language    string        `yaml:"language"` // "auto" or a code like "en", "ar"
	Timeout     time.Duration `yaml:"timeout"`
	Concurrency int           `yaml:"concurrency"`
	ModelPath   string        `yaml:"model_path"` // whisper engine: ggml model file
	Threads     int           `yaml:"threads"`
	Window      string        `yaml:"window"` // whisper engine: full (default) or fit encoder window
	// CoverTail sends the speech after the engine's last word to it again
	// (transcribe.CoverTail): Whisper sometimes stops before an utterance
	// ends, on spelled digits and letters most.
	CoverTail bool          `yaml:"cover_tail"`
	Backlog   Backlog       `yaml:"backlog"`
	Rooms     RoomLanguages `yaml:"rooms"`
	Final     FinalPass     `yaml:"final"`
	Settle    SettlePass    `yaml:"settle"`
}

// Policy configures the policy engine.
type Policy struct {
	File string `yaml:"file"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Listen string `yaml:"listen"` // host:port, empty to disable
}

// Default returns the embedded defaults: everything in one process with
// an in-memory broker and a local-directory store.
func Default() Config {
	c := Config{
		DataDir: "earshot-data",
		Log:     Log{Level: "info", Format: "text"},
		Kafka: Kafka{
			Embedded:     true,
			ClientID:     "earshot",
			BatchTimeout: 5 * time.Millisecond,
			Partitions:   6,
			CreateTopics: true,
		},
		Storage:  Storage{Backend: "local", S3: S3Storage{Region: "us-east-1", Bucket: "earshot", CreateBucket: true, PathStyle: true}},
		Identity: Identity{KeyVersion: 1},
		Ingest: Ingest{
			Janus:          Janus{IdentityField: "feed_id", VideoRoom: true, AudioBridge: true},
			BotDisplayName: "Recording — Trust & Safety",
			Rooms:          RoomSelection{Mode: "all"},
			ChunkDuration:  240 * time.Millisecond, // latency: the transcriber cannot cut before a chunk closes
			SegmentLength:  30 * time.Second,
		},
		Transcribe: Transcribe{Engine: "http", Model: "tiny.en", Language: "auto", Timeout: 30 * time.Second, Concurrency: 2, Threads: 2, CoverTail: true},
		Metrics:    Metrics{Listen: "127.0.0.1:9464"},
	}
	// Sections that later issues added keep their defaults, checks and path
	// rules next to their types, one file each.
	c.Ingest.Lease = defaultLease()
	c.Ingest.Participants = defaultParticipants()
	c.Transcribe.Backlog = defaultBacklog()
	c.Transcribe.Rooms = defaultRoomLanguages()
	c.Transcribe.Final = defaultFinalPass()
	c.Transcribe.Settle = defaultSettlePass()
	c.Alerts = defaultAlerts()
	c.Serve = defaultServe()
	c.Crypto = defaultCrypto()
	c.Retention = defaultRetention()
	c.Compliance = defaultCompliance()
	c.Rebroadcast = defaultRebroadcast()
	return c
}

// Load builds the configuration: defaults, the YAML file at path (if path
// is not empty), the environment (environ, as os.Environ), then overrides
// ("key.path=value"). It does not validate: call Validate.
func Load(path string, environ []string, overrides []string) (Config, error) {
	cfg := Default()
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		defer f.Close()
		if err := Decode(f, &cfg); err != nil {
			return cfg, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	for _, o := range overrides {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			return cfg, fmt.Errorf("config: override %q is not key.path=value", o)
		}
		if err := Set(&cfg, strings.TrimSpace(k), v); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// Decode decodes YAML into cfg strictly: unknown keys and a second document
// are errors.
func Decode(r io.Reader, cfg *Config) error {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("decode: more than one YAML document")
	}
	return nil
}

// ResolvePaths fills path defaults that depend on DataDir.
func (c *Config) ResolvePaths() {
	if c.Storage.Local.Dir == "" {
		c.Storage.Local.Dir = filepath.Join(c.DataDir, "store")
	}
	if c.Ingest.SpoolDir == "" {
		c.Ingest.SpoolDir = filepath.Join(c.DataDir, "spool")
	}
	c.Crypto.resolvePaths(c.DataDir)
	c.Serve.resolvePaths(c.DataDir)
	c.Compliance.resolvePaths(c.DataDir)
	if c.Identity.SecretFile == "" {
		c.Identity.SecretFile = filepath.Join(c.DataDir, "secrets", "pseudonym.key")
	}
}

// Validate returns every problem found, each saying how to fix it.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s (%s): %s", key, EnvName(key), fmt.Sprintf(format, a...)))
	}
	if c.DataDir == "" {
		bad("data_dir", "is empty; set a folder Earshot may write its local state to")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not text or json", c.Log.Format)
	}
	switch {
	case c.Kafka.Embedded && len(c.Kafka.Brokers) > 0:
		bad("kafka.embedded", "is true while kafka.brokers is set; set kafka.embedded: false to use the brokers, or remove kafka.brokers")
	case !c.Kafka.Embedded && len(c.Kafka.Brokers) == 0:
		bad("kafka.brokers", "is empty; list the brokers as host:port, or set kafka.embedded: true for an in-memory evaluation broker")
	}
	for _, b := range c.Kafka.Brokers {
		if !hostPort.MatchString(b) {
			bad("kafka.brokers", "%q is not host:port", b)
		}
	}
	if c.Kafka.BatchTimeout <= 0 || c.Kafka.BatchTimeout > time.Second {
		bad("kafka.batch_timeout", "%v must be between 1ms and 1s (each hop waits up to this long; 5ms is a good value)", c.Kafka.BatchTimeout)
	}
	if c.Kafka.ReplicationFactor < 0 {
		bad("kafka.replication_factor", "%d must be 0 (the broker's default) or more", c.Kafka.ReplicationFactor)
	}
	if c.Kafka.Partitions < 1 {
		bad("kafka.partitions", "%d must be at least 1", c.Kafka.Partitions)
	}
	switch c.Storage.Backend {
	case "local":
	case "s3":
		s := c.Storage.S3
		if !hostPort.MatchString(s.Endpoint) && !hostOnly.MatchString(s.Endpoint) {
			bad("storage.s3.endpoint", "%q is not host or host:port (no scheme; set storage.s3.use_tls for https)", s.Endpoint)
		}
		if s.Bucket == "" {
			bad("storage.s3.bucket", "is empty; name the bucket Earshot writes to")
		}
		if s.AccessKey == "" {
			bad("storage.s3.access_key", "is empty; set the S3 access key")
		}
		if s.SecretKey == "" && s.SecretKeyFile == "" {
			bad("storage.s3.secret_key_file", "is empty; point it at a file holding the S3 secret key (or set EARSHOT_STORAGE_S3_SECRET_KEY)")
		}
		if s.SSE != "" && s.SSE != "none" && s.SSE != "s3" && (!strings.HasPrefix(s.SSE, "kms:") || len(s.SSE) == len("kms:")) {
			bad("storage.s3.sse", "%q is not \"\", \"none\", \"s3\" or \"kms:<key id>\"", s.SSE)
		}
		if s.ObjectLock && !s.Versioning {
			bad("storage.s3.versioning", "must be true when storage.s3.object_lock is (S3 object lock needs versioning)")
		}
	default:
		bad("storage.backend", "%q is not local or s3", c.Storage.Backend)
	}
	if c.Identity.KeyVersion < 1 {
		bad("identity.key_version", "%d must be at least 1", c.Identity.KeyVersion)
	}
	if c.Identity.RequireSecret && c.Identity.SecretFile == "" {
		bad("identity.secret_file", "is empty while identity.require_secret is true; point it at the deployment's pseudonym secret")
	}
	switch c.Ingest.Janus.IdentityField {
	case "feed_id", "display":
	default:
		bad("ingest.janus.identity_field", "%q is not feed_id or display", c.Ingest.Janus.IdentityField)
	}
	switch c.Ingest.Rooms.Mode {
	case "all":
	case "list":
		if len(c.Ingest.Rooms.List) == 0 {
			bad("ingest.rooms.list", "is empty while ingest.rooms.mode is list; name the rooms to join")
		}
	case "pattern":
		if _, err := regexp.Compile(c.Ingest.Rooms.Pattern); err != nil || c.Ingest.Rooms.Pattern == "" {
			bad("ingest.rooms.pattern", "%q is not a regular expression: %v", c.Ingest.Rooms.Pattern, err)
		}
	default:
		bad("ingest.rooms.mode", "%q is not all, list or pattern", c.Ingest.Rooms.Mode)
	}
	if c.Ingest.BotDisplayName == "" {
		bad("ingest.bot_display_name", "is empty; participants must see that the room is recorded")
	}
	if c.Ingest.ChunkDuration < 20*time.Millisecond || c.Ingest.ChunkDuration > 10*time.Second {
		bad("ingest.chunk_duration", "%v must be between 20ms and 10s", c.Ingest.ChunkDuration)
	}
	if c.Ingest.SegmentLength < time.Second || c.Ingest.SegmentLength > 10*time.Minute {
		bad("ingest.segment_duration", "%v must be between 1s and 10m", c.Ingest.SegmentLength)
	}
	if c.Ingest.SegmentLength%(20*time.Millisecond) != 0 || c.Ingest.ChunkDuration%(20*time.Millisecond) != 0 {
		bad("ingest.segment_duration", "chunk and segment durations must be multiples of 20ms (one Opus frame)")
	}
	switch c.Transcribe.Engine {
	case "http":
		if u := c.Transcribe.URL.Reveal(); u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			bad("transcribe.url", "%q must start with http:// or https://", redactedURL(c.Transcribe.URL))
		}
	case "whisper":
		if c.Transcribe.ModelPath == "" {
			bad("transcribe.model_path", "is empty; point it at a ggml Whisper model file (earshot model convert makes one from a faster-whisper model)")
		}
		if c.Transcribe.Threads < 0 || c.Transcribe.Threads > 256 {
			bad("transcribe.threads", "%d must be between 0 (min(4, CPUs)) and 256", c.Transcribe.Threads)
		}
		if w := c.Transcribe.Window; w != "" && w != "full" && w != "fit" {
			bad("transcribe.window", "%q is not full or fit", w)
		}
	default:
		bad("transcribe.engine", "%q is not http or whisper", c.Transcribe.Engine)
	}
	if c.Transcribe.Timeout <= 0 {
		bad("transcribe.timeout", "%v must be positive", c.Transcribe.Timeout)
	}
	if c.Transcribe.Concurrency < 1 {
		bad("transcribe.concurrency", "%d must be at least 1", c.Transcribe.Concurrency)
	}
	c.Kafka.validateSecurity(bad)
	c.Ingest.Lease.validate(bad)
	c.Ingest.Participants.validate(bad)
	c.Transcribe.Backlog.validate(bad)
	c.Transcribe.Rooms.validate(bad)
	c.Transcribe.Final.validate(bad)
	c.Transcribe.Settle.validate(bad)
	c.Alerts.validate(bad)
	c.Serve.validate(bad)
	c.Crypto.validate(bad)
	c.Retention.validate(bad)
	c.Compliance.validate(bad)
	c.Rebroadcast.validate(bad)
	if c.Metrics.Listen != "" && !hostPort.MatchString(c.Metrics.Listen) {
		bad("metrics.listen", "%q is not host:port (empty disables metrics)", c.Metrics.Listen)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("config: %d problem(s):\n%w", len(errs), errors.Join(errs...))
}

var (
	hostPort = regexp.MustCompile(`^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-_]+):[0-9]{1,5}$`)
	hostOnly = regexp.MustCompile(`^[A-Za-z0-9.\-_]+$`)
)
