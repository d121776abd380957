package transcribe

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
)

// outageKeys fails its first fails Opens as a key store behind an
// object-store outage does.
type outageKeys struct {
	event.Keys
	mu    sync.Mutex
	fails int
}

func (k *outageKeys) Open(ctx context.Context, ref event.KeyRef, ciphertext, aad []byte) ([]byte, error) {
	k.mu.Lock()
	fail := k.fails > 0
	k.fails--
	k.mu.Unlock()
	if fail {
		return nil, fmt.Errorf("crypt: open under %s: %w: s3 endpoint 127.0.0.1:1: connection refused", ref.ID, storage.ErrUnavailable)
	}
	return k.Keys.Open(ctx, ref, ciphertext, aad)
}

// TestWorkerKeyStoreOutage: chunks whose key cannot be fetched while the
// key store is unreachable are not dead-lettered: the worker tries again
// and transcribes the track once the store answers.
func TestWorkerKeyStoreOutage(t *testing.T) {
	eng := &langEngine{}
	out, _ := runWorker(t, nil, WorkerConfig{Engine: eng, Language: "en"}, func(w *Worker) {
		w.cfg.Keys = &outageKeys{Keys: w.cfg.Keys, fails: 4}
	})
	if dl := out.Topic(event.TopicDeadLetter); len(dl) != 0 {
		t.Fatalf("%d chunks dead-lettered during a key-store outage, want none", len(dl))
	}
	if len(out.Topic(event.TopicTranscripts)) == 0 {
		t.Fatal("no transcript after the key store came back")
	}
}
