package transcribe

import (
	"testing"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/badinput"
)

// TestWorkerKeyStoreOutage: chunks whose key cannot be fetched while the
// key store is unreachable are not dead-lettered: the worker tries again
// and transcribes the track once the store answers.
func TestWorkerKeyStoreOutage(t *testing.T) {
	eng := &langEngine{}
	out, _ := runWorker(t, nil, WorkerConfig{Engine: eng, Language: "en"}, func(w *Worker) {
		w.cfg.Keys = &badinput.UnreachableKeys{Keys: w.cfg.Keys, Fails: 4}
	})
	if dl := out.Topic(event.TopicDeadLetter); len(dl) != 0 {
		t.Fatalf("%d chunks dead-lettered during a key-store outage, want none", len(dl))
	}
	if len(out.Topic(event.TopicTranscripts)) == 0 {
		t.Fatal("no transcript after the key store came back")
	}
}
