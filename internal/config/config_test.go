package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsValidate(t *testing.T) {
	c := Default()
	c.ResolvePaths()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "earshot.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadLayers(t *testing.T) {
	p := write(t, `
kafka:
  embedded: false
  brokers: [a:9092]
storage:
  backend: s3
  s3: {endpoint: "127.0.0.1:7070", bucket: b, access_key: k, secret_key: s}
`)
	c, err := Load(p, []string{"EARSHOT_KAFKA_BROKERS=b:1,c:2", "EARSHOT_INGEST_CHUNK_DURATION=500ms", "HOME=/x"}, []string{"storage.s3.bucket=override"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Kafka.Brokers, ","); got != "b:1,c:2" {
		t.Errorf("env did not override brokers: %s", got)
	}
	if c.Ingest.ChunkDuration != 500*time.Millisecond {
		t.Errorf("chunk duration = %v", c.Ingest.ChunkDuration)
	}
	if c.Storage.S3.Bucket != "override" || c.Storage.S3.Endpoint != "127.0.0.1:7070" {
		t.Errorf("s3 = %+v", c.Storage.S3)
	}
	if c.Transcribe.Timeout != 30*time.Second {
		t.Errorf("default lost: %v", c.Transcribe.Timeout)
	}
	c.ResolvePaths()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestStrictDecode(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"unknown key", "kafka:\n  brokerz: [a:1]\n", "brokerz"},
		{"wrong type", "kafka:\n  partitions: many\n", "line 2"},
		{"two documents", "log: {level: info}\n---\nlog: {level: debug}\n", "more than one"},
		{"bad duration", "ingest:\n  chunk_duration: soon\n", "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(write(t, tt.body), nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want mention of %q", err, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.ResolvePaths()
	c.Log.Level = "loud"
	c.Kafka.Embedded = false
	c.Storage.Backend = "s3"
	c.Ingest.Rooms.Mode = "pattern"
	c.Ingest.Rooms.Pattern = "(("
	c.Transcribe.Engine = "whisper"
	c.Transcribe.Threads = -1
	c.Transcribe.Window = "half"
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config validated")
	}
	for _, want := range []string{"log.level", "kafka.brokers", "storage.s3.endpoint", "storage.s3.access_key", "ingest.rooms.pattern", "EARSHOT_KAFKA_BROKERS", "transcribe.model_path", "transcribe.threads", "transcribe.window"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}

func TestOverridesAndKeys(t *testing.T) {
	if _, err := Load("", nil, []string{"nope.key=1"}); err == nil {
		t.Fatal("unknown override accepted")
	}
	if _, err := Load("", nil, []string{"kafka.partitions"}); err == nil {
		t.Fatal("override without = accepted")
	}
	if _, err := Load("", []string{"EARSHOT_KAFKA_EMBEDDED=maybe"}, nil); err == nil || !strings.Contains(err.Error(), "EARSHOT_KAFKA_EMBEDDED") {
		t.Fatalf("bad env bool: %v", err)
	}
	keys := Keys()
	for _, k := range []string{"storage.s3.endpoint", "kafka.batch_timeout", "ingest.janus.url"} {
		found := false
		for _, have := range keys {
			found = found || have == k
		}
		if !found {
			t.Errorf("Keys lacks %s", k)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("kafka:\n  brokers: [a:1]\n")
	f.Add("ingest: {chunk_duration: 1s, rooms: {mode: list, list: [a]}}")
	f.Add("- 1\n- 2")
	f.Fuzz(func(t *testing.T, s string) {
		c := Default()
		if err := Decode(strings.NewReader(s), &c); err != nil {
			return
		}
		c.ResolvePaths()
		_ = c.Validate() // must not panic
	})
}

// loadChecked loads a config from env and overrides (after data_dir=d),
// resolves its paths and validates it. With invalid set, validation must
// fail naming that key, and ok is false; otherwise it must pass.
func loadChecked(t *testing.T, env, set []string, invalid string) (c Config, ok bool) {
	t.Helper()
	c, err := Load("", env, append([]string{"data_dir=d"}, set...))
	if err != nil {
		t.Fatal(err)
	}
	c.ResolvePaths()
	err = c.Validate()
	if invalid != "" {
		if err == nil || !strings.Contains(err.Error(), invalid) {
			t.Fatalf("Validate: %v; want an error naming %s", err, invalid)
		}
		return c, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return c, true
}
