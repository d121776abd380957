package bus

import (
	"context"
	"encoding/binary"
	"log/slog"
	"slices"
	"testing"
	"time"
)

// BenchmarkRoundTripEmbedded measures one record's latency from Produce to
// the consumer's handler on the embedded broker, one record at a time
// (acks=all, the default 5 ms BatchTimeout). Reports bus_embedded_rtt_p50_ms and _p95_ms over
// at least 100 records.
func BenchmarkRoundTripEmbedded(b *testing.B) {
	e, err := NewEmbedded(b.Context(), EmbeddedConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	benchRoundTrip(b, e.Cluster(), "bus_embedded")
}

// BenchmarkRoundTripKafka is the same on the test bed's Kafka.
func BenchmarkRoundTripKafka(b *testing.B) {
	benchRoundTrip(b, testKafka(b), "bus_kafka")
}

// figure prefixes the reported figures (<figure>_rtt_p50_ms, ..._p95_ms).
func benchRoundTrip(b *testing.B, brokers Cluster, figure string) {
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	topic, group := uniqueName("bench-rtt"), uniqueName("bench")
	if err := EnsureTopics(ctx, brokers, TopicSpec{Name: topic, Partitions: 3, Retention: time.Hour}); err != nil {
		b.Fatal(err)
	}
	// Logs would interleave with the benchmark's result line on stdout.
	quiet := slog.New(slog.DiscardHandler)
	p, err := NewProducer(ProducerConfig{Cluster: brokers, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	cfg := ConsumerConfig{Cluster: brokers, GroupID: group, Topics: []string{topic}, StartOffset: FirstOffset, Logger: quiet}
	c, err := NewConsumer(cfg)
	if err != nil {
		b.Fatal(err)
	}
	got := make(chan time.Duration, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- c.Run(ctx, func(_ context.Context, d *Delivery) {
			sent := time.Unix(0, int64(binary.BigEndian.Uint64(d.Value)))
			d.Ack()
			got <- time.Since(sent)
		})
	}()
	defer func() { _ = c.Close(); <-errc }()

	send := func() time.Duration {
		v := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
		if err := p.Produce(ctx, Message{Topic: topic, Key: []byte("track"), Value: v}); err != nil {
			b.Fatal(err)
		}
		select {
		case d := <-got:
			return d
		case <-ctx.Done():
			b.Fatal("timed out waiting for the record")
			return 0
		}
	}
	send() // the group join is not part of the figure

	n := max(b.N, 100) // a p95 needs enough samples
	lat := make([]time.Duration, 0, n)
	b.ResetTimer()
	for range n {
		lat = append(lat, send())
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), figure+"_rtt_p50_ms")
	b.ReportMetric(pct(0.95), figure+"_rtt_p95_ms")
}
