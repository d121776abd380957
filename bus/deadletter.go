package bus

import (
	"context"
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
)

// DeadLetter publishes original, unchanged (key, value, headers), to topic,
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
	hs := make([]Header, 0, len(original.Headers)+5)
	hs = append(hs, original.Headers...)
	hs = append(hs,
		Header{Key: HeaderDLQReason, Value: []byte(reason)},
		Header{Key: HeaderDLQTopic, Value: []byte(original.Topic)},
		Header{Key: HeaderDLQPartition, Value: []byte(strconv.Itoa(original.Partition))},
		Header{Key: HeaderDLQOffset, Value: []byte(strconv.FormatInt(original.Offset, 10))},
		Header{Key: HeaderDLQTime, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
	)
	dl := Message{Topic: topic, Key: original.Key, Value: original.Value, Headers: hs}
	if err := p.Produce(ctx, dl); err != nil {
		return fmt.Errorf("bus: dead-letter %s/%d@%d: %w", original.Topic, original.Partition, original.Offset, err)
	}
	return nil
}
