// Package badinput is the corpus of bad records every Kafka consumer's
// tests feed it: whatever arrives on a topic, a consumer dead-letters what
// it cannot use with a reason, acks it, never panics, and goes on with
// the next record. A record of an erased speaker is not bad: it is
// skipped and acked, not dead-lettered.
package badinput

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage/crypt"
)

// Case is one record of the corpus.
type Case struct {
	Name string
	Msg  bus.Message
	// Erased: the record is well formed but its speaker's key is gone;
	// the consumer skips and acks it without a dead letter.
	Erased bool
}

// BrokerLimit is the size of the corpus's largest record: just under
// Kafka's default message.max.bytes (1,048,588), headers included.
const BrokerLimit = 1_000_000

// Corpus returns bad variants of good, a valid record of the consumer's
// topic whose protected part is sealed under keys. erase, when set,
// destroys a data key in keys, so that one case is a record of an erased
// speaker (nil leaves that case out).
func Corpus(tb testing.TB, good bus.Message, keys event.Keys, erase func(event.KeyRef)) []Case {
	tb.Helper()
	e, err := event.Decode(good.Value)
	if err != nil {
		tb.Fatalf("badinput: the good record does not decode: %v", err)
	}
	if e.Protected == nil || e.Protected.Alg != event.AlgAES256GCM {
		tb.Fatal("badinput: the good record must have a sealed protected part")
	}
	var generic map[string]json.RawMessage
	if err := json.Unmarshal(good.Value, &generic); err != nil {
		tb.Fatal(err)
	}
	rewrite := func(f func(m map[string]json.RawMessage)) []byte {
		m := map[string]json.RawMessage{}
		for k, v := range generic {
			m[k] = v
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	msg := func(v []byte) bus.Message { return bus.Message{Topic: good.Topic, Key: good.Key, Value: v} }
	reseal := func(name string, f func(c *event.Envelope)) Case {
		c := *e
		c.EventID = event.DeriveID(event.PrefixEvent, "badinput", name, e.EventID)
		f(&c)
		b, err := c.Marshal()
		if err != nil {
			tb.Fatal(err)
		}
		return Case{Name: name, Msg: msg(b)}
	}
	cases := []Case{
		{Name: "empty", Msg: msg(nil)},
		{Name: "not JSON", Msg: msg([]byte("\x00\xffnot json"))},
		{Name: "truncated JSON", Msg: msg(good.Value[:len(good.Value)/2])},
		{Name: "JSON array", Msg: msg([]byte(`[1,2,3]`))},
		{Name: "wrong schema version", Msg: msg(rewrite(func(m map[string]json.RawMessage) { m["schema_version"] = json.RawMessage(`99`) }))},
		{Name: "missing payload", Msg: msg(rewrite(func(m map[string]json.RawMessage) { delete(m, "payload") }))},
		{Name: "payload of the wrong type", Msg: msg(rewrite(func(m map[string]json.RawMessage) { m["payload"] = json.RawMessage(`[true, "x"]`) }))},
		{Name: "timeline of the wrong type", Msg: msg(rewrite(func(m map[string]json.RawMessage) { m["timeline"] = json.RawMessage(`"yesterday"`) }))},
		{Name: "unknown type", Msg: msg(rewrite(func(m map[string]json.RawMessage) { m["type"] = json.RawMessage(`"bogus.type"`) }))},
		{Name: "missing protected part", Msg: msg(rewrite(func(m map[string]json.RawMessage) { delete(m, "protected") }))},
		reseal("forged alg none", func(c *event.Envelope) {
			if err := c.SetProtected(c.KeyRef().ID, map[string]string{"text": "forged"}); err != nil {
				tb.Fatal(err)
			}
		}),
		reseal("sealed under another key", func(c *event.Envelope) {
			// Same protected data, sealed by a keyring that is not the
			// deployment's: it authenticates under no key the consumer has.
			var raw json.RawMessage
			if err := e.Open(context.Background(), keys, &raw); err != nil {
				tb.Fatal(err)
			}
			if err := c.Seal(context.Background(), crypt.NewMemory(), raw); err != nil {
				tb.Fatal(err)
			}
		}),
		reseal("sealed for another event", func(c *event.Envelope) {
			// The real ciphertext, moved to another event ID: the
			// associated data (type and ID) no longer matches.
			p := *e.Protected
			c.Protected = &p
		}),
		{Name: "at the broker's size limit", Msg: msg(rewrite(func(m map[string]json.RawMessage) {
			pad := bytes.Repeat([]byte("a"), BrokerLimit-len(good.Value)-64)
			m["padding"] = json.RawMessage(`"` + string(pad) + `"`)
		}))},
	}
	if erase != nil {
		gone := reseal("erased speaker", func(c *event.Envelope) {
			c.Speaker = "p1_badinput_erased"
			var raw json.RawMessage
			if err := e.Open(context.Background(), keys, &raw); err != nil {
				tb.Fatal(err)
			}
			if err := c.Seal(context.Background(), keys, raw); err != nil {
				tb.Fatal(err)
			}
			erase(c.KeyRef())
		})
		gone.Erased = true
		cases = append(cases, gone)
	}
	return cases
}

// Check asserts what a consumer did with the corpus, fed before one good
// record: every bad record dead-lettered once with a reason, every record
// (the erased one and the good one too) acked, no erased record
// dead-lettered. dead holds the dead letters written.
func Check(tb testing.TB, cases []Case, dead []bus.Message, acked func(i int) bool) {
	tb.Helper()
	byValue := map[string]int{}
	for _, d := range dead {
		v := d.Value
		if len(v) > bus.MaxDeadLetterValue {
			tb.Errorf("a dead letter of %d bytes", len(v))
		}
		if r, _ := d.Header(bus.HeaderDLQReason); len(r) == 0 {
			tb.Errorf("a dead letter without a reason (%.60q)", v)
		}
		byValue[string(v)]++
	}
	for i, c := range cases {
		if !acked(i) {
			tb.Errorf("%s: not acked", c.Name)
		}
		v := c.Msg.Value
		if len(v) > bus.MaxDeadLetterValue {
			v = v[:bus.MaxDeadLetterValue]
		}
		switch n := byValue[string(v)]; {
		case c.Erased && n != 0:
			tb.Errorf("%s: dead-lettered; a record of an erased speaker is skipped", c.Name)
		case !c.Erased && n != 1:
			tb.Errorf("%s: dead-lettered %d times, want once", c.Name, n)
		}
	}
}
