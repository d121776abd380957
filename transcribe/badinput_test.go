package transcribe

import (
	"context"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/badinput"
	"github.com/earshot/earshot/internal/bustest"
)

// TestWorkerBadInput: the transcription worker dead-letters and acks every
// record of the bad-input corpus (built from the track's first chunk),
// skips an erased speaker's chunk without a dead letter, and transcribes
// the track after them.
func TestWorkerBadInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	recs := chunkRecords(t, "trk_bad")
	cases := badinput.Corpus(t, recs[0], testKeys, func(r event.KeyRef) { testKeys.Shred(r.ID) })
	feed := bustest.NewFeed()
	out := &bustest.Capture{}
	stop := runUntilStopped(t, ctx, feed, out, &fakeEngine{})
	defer stop()
	var offs []int64
	for _, c := range cases {
		offs = append(offs, feed.Push(c.Msg)...)
	}
	feed.WaitAcked(t, append(offs, feed.Push(recs...)...)...)
	stop()
	badinput.Check(t, cases, out.Topic(event.TopicDeadLetter), func(i int) bool { return feed.Acked(offs[i]) })
	if n := len(out.Topic(event.TopicTranscripts)); n == 0 {
		t.Fatal("the track after the corpus was not transcribed")
	}
}
