package policy

import (
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
	st, feed, out := feedStage(t, StageConfig{})
	stop := bustest.Start(t, st.Run)
	var offs []int64
	for _, c := range cases {
		offs = append(offs, feed.Push(c.Msg)...)
	}
	goodOff := feed.Push(good)
	feed.WaitAcked(t, append(offs, goodOff...)...)
	stop()
	badinput.Check(t, cases, out.Topic(event.TopicDeadLetter), func(i int) bool { return feed.Acked(offs[i]) })
	if n := len(out.Topic(event.TopicAlerts)); n != 1 {
		t.Fatalf("%d alerts after the corpus, want the good transcript's one", n)
	}
}
