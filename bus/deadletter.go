package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Headers a dead-lettered record carries in addition to its own.
const (
	HeaderDLQReason    = "earshot-dlq-reason"
	HeaderDLQTopic     = "earshot-dlq-source-topic"
	HeaderDLQPartition = "earshot-dlq-source-partition"
	HeaderDLQOffset    = "earshot-dlq-source-offset"
	HeaderDLQTime      = "earshot-dlq-time" // RFC 3339 (UTC, nanoseconds) when it was dead-lettered
	// Set only when the value was cut to MaxDeadLetterValue: the whole
	// value's size and SHA-256 (hex), so it can still be matched.
	HeaderDLQValueSize   = "earshot-dlq-value-size"
	HeaderDLQValueSHA256 = "earshot-dlq-value-sha256"
)

// MaxDeadLetterValue bounds the value a dead letter keeps. A record can
// be dead-lettered because it is as large as the broker takes; its dead
// letter, with headers added, must still fit, so it keeps the value's
// start and names the whole by size and SHA-256.
const MaxDeadLetterValue = 64 << 10

// maxReason bounds the reason header (a reason is one short sentence).
const maxReason = 1024

// DeadLetter publishes original (key, headers, and its value up to
// MaxDeadLetterValue) to topic,
// with headers naming the reason and where it came from. The key is kept, so
// the dead letters of one track or room stay in order on one partition. It
// returns when the record is durable; only then may the caller Ack the
// original.
//
// reason is stored in the clear: it must not hold personal data (say which
// check failed, not what the record said).
func DeadLetter(ctx context.Context, p Sender, topic string, original Message, reason string) error {
	if topic == "" {
		return errors.New("bus: dead-letter: no topic")
	}
	hs := make([]Header, 0, len(original.Headers)+7)
	hs = append(hs, original.Headers...)
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	value := original.Value
	if len(value) > MaxDeadLetterValue {
		sum := sha256.Sum256(value)
		hs = append(hs,
			Header{Key: HeaderDLQValueSize, Value: []byte(strconv.Itoa(len(value)))},
			Header{Key: HeaderDLQValueSHA256, Value: []byte(hex.EncodeToString(sum[:]))})
		value = value[:MaxDeadLetterValue]
	}
	hs = append(hs,
		Header{Key: HeaderDLQReason, Value: []byte(reason)},
		Header{Key: HeaderDLQTopic, Value: []byte(original.Topic)},
		Header{Key: HeaderDLQPartition, Value: []byte(strconv.Itoa(original.Partition))},
		Header{Key: HeaderDLQOffset, Value: []byte(strconv.FormatInt(original.Offset, 10))},
		Header{Key: HeaderDLQTime, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
	)
	dl := Message{Topic: topic, Key: original.Key, Value: value, Headers: hs}
	if err := p.Produce(ctx, dl); err != nil {
		return fmt.Errorf("bus: dead-letter %s/%d@%d: %w", original.Topic, original.Partition, original.Offset, err)
	}
	return nil
}
