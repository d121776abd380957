package bus

import (
	"time"

	"github.com/segmentio/kafka-go"
)

// Header is one Kafka record header. Keys may repeat.
type Header struct {
	Key   string
	Value []byte
}

// Message is one Kafka record. Produce reads Topic, Key, Value and Headers;
// the consumer also fills Partition, Offset and Time. It is bus's own type,
// not kafka.Message, so stages do not depend on the client library.
type Message struct {
	Topic   string
	Key     []byte
	Value   []byte
	Headers []Header

	// Set on consumed records only.
	Partition int
	Offset    int64
	Time      time.Time // the record's timestamp (producer create time by default)
}

// Header returns the value of the last header named key, so a header added
// later (for example by a dead-letter hop) overrides an earlier one.
func (m *Message) Header(key string) ([]byte, bool) {
	for i := len(m.Headers) - 1; i >= 0; i-- {
		if m.Headers[i].Key == key {
			return m.Headers[i].Value, true
		}
	}
	return nil, false
}

func (m *Message) toKafka() kafka.Message {
	km := kafka.Message{Topic: m.Topic, Key: m.Key, Value: m.Value}
	if len(m.Headers) > 0 {
		km.Headers = make([]kafka.Header, len(m.Headers))
		for i, h := range m.Headers {
			km.Headers[i] = kafka.Header{Key: h.Key, Value: h.Value}
		}
	}
	return km
}

func fromKafka(km *kafka.Message) Message {
	m := Message{
		Topic:     km.Topic,
		Key:       km.Key,
		Value:     km.Value,
		Partition: km.Partition,
		Offset:    km.Offset,
		Time:      km.Time,
	}
	if len(km.Headers) > 0 {
		m.Headers = make([]Header, len(km.Headers))
		for i, h := range km.Headers {
			m.Headers[i] = Header{Key: h.Key, Value: h.Value}
		}
	}
	return m
}
