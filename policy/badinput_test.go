package policy

import (
	"context"
	"testing"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/badinput"
	"github.com/earshot/earshot/internal/bustest"
)

// TestStageBadInput: the policy stage dead-letters and acks every record
// of the bad-input corpus, skips an erased speaker's, and raises the alert
// of the good transcript after them.
func TestStageBadInput(t *testing.T) {
	good := transcriptOf(t, "p1_spk", "trk_t", 0, "if anyone leaks this i will find you and hurt you")
	cases := badinput.Corpus(t, good, testKeys, func(r event.KeyRef) { testKeys.Shred(r.ID) })
	feed := bustest.NewFeed()
	out := &bustest.Capture{}
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewStage(StageConfig{Consumer: feed, Sender: out, Policy: Fixed{P: p}, Producer: event.Producer{Name: "t"}, Keys: testKeys})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	var offs []int64
	for _, c := range cases {
		offs = append(offs, feed.Push(c.Msg)...)
	}
	goodOff := feed.Push(good)
	feed.WaitAcked(t, append(offs, goodOff...)...)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	badinput.Check(t, cases, out.Topic(event.TopicDeadLetter), func(i int) bool { return feed.Acked(offs[i]) })
	if n := len(out.Topic(event.TopicAlerts)); n != 1 {
		t.Fatalf("%d alerts after the corpus, want the good transcript's one", n)
	}
}
