package bus_test

import (
	"context"
	"fmt"
	"time"

	"github.com/earshot/earshot/bus"
)

// A stage's wiring: topics ensured, records produced with acks=all, and a
// consumer that deduplicates on the event ID and acknowledges each record
// once its work is done (here at once; normally from a worker goroutine).
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	broker, err := bus.NewEmbedded(ctx, bus.EmbeddedConfig{})
	if err != nil {
		panic(err)
	}
	defer broker.Close()

	const topic = "example.events"
	if err := bus.EnsureTopics(ctx, broker.Cluster(), bus.TopicSpec{Name: topic, Partitions: 1}); err != nil {
		panic(err)
	}
	p, err := bus.NewProducer(bus.ProducerConfig{Cluster: broker.Cluster()})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	// ev-2 twice: a producer retry after an unknown outcome.
	for _, id := range []string{"ev-1", "ev-2", "ev-2", "ev-3"} {
		msg := bus.Message{Topic: topic, Key: []byte("track-a"), Value: []byte(id)}
		if err := p.Produce(ctx, msg); err != nil {
			panic(err)
		}
	}

	c, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: broker.Cluster(), GroupID: "example", Topics: []string{topic}})
	if err != nil {
		panic(err)
	}
	seen := bus.NewDedupe(0)
	done := make(chan struct{})
	go func() {
		_ = c.Run(ctx, func(_ context.Context, d *bus.Delivery) {
			id := string(d.Value)
			if !seen.Seen(id) {
				fmt.Println("handled", id)
				seen.Add(id)
			}
			d.Ack()
			if d.Offset == 3 {
				close(done)
			}
		})
	}()
	<-done
	_ = c.Close()
	// Output:
	// handled ev-1
	// handled ev-2
	// handled ev-3
}
