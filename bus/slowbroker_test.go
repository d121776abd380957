package bus

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// slowBroker is a TCP proxy to a broker that holds back every answer for
// delay, as a loaded broker (or machine) does. Only what a client sends
// to its address goes through it: the brokers a metadata answer names are
// reached directly.
func slowBroker(t *testing.T, broker string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	type chunk struct {
		at time.Time
		b  []byte
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", broker)
			if err != nil {
				_ = client.Close()
				continue
			}
			track(client)
			track(server)
			answers := make(chan chunk, 64)
			wg.Add(3)
			go func() { // requests go straight through
				defer wg.Done()
				_, _ = io.Copy(server, client)
				_ = server.Close()
			}()
			go func() { // answers are read at once and passed on late
				defer wg.Done()
				defer close(answers)
				for {
					b := make([]byte, 64<<10)
					n, err := server.Read(b)
					if n > 0 {
						answers <- chunk{time.Now(), b[:n]}
					}
					if err != nil {
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				defer client.Close()
				for c := range answers {
					time.Sleep(time.Until(c.at.Add(delay)))
					if _, err := client.Write(c.b); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestEmbeddedSlowBroker(t *testing.T) {
	scenarioSlowBroker(t, newEmbedded(t, EmbeddedConfig{}).Cluster())
}

func TestKafkaSlowBroker(t *testing.T) {
	t.Parallel()
	scenarioSlowBroker(t, testKafka(t))
}

// scenarioSlowBroker: a bootstrap broker that takes 1.5 s to
// answer (seen on a loaded test bed) slows the calls that make a client
// per call down but does not fail them: EnsureTopics creates the topic,
// and Offsets and ReadRange through it give what they give directly.
func scenarioSlowBroker(t *testing.T, brokers Cluster) {
	ctx := testContext(t)
	topic := uniqueName("earshot.test.slow")
	slowAddr := slowBroker(t, brokers.Brokers[0], 1500*time.Millisecond)
	slowCluster := brokers
	slowCluster.Brokers = []string{slowAddr}
	if err := EnsureTopics(ctx, slowCluster, TopicSpec{Name: topic, Partitions: 2}); err != nil {
		t.Fatalf("EnsureTopics through a broker that answers in 1.5 s: %v", err)
	}
	p := newTestProducer(t, brokers)
	for i := range 4 {
		if err := p.Produce(ctx, Message{Topic: topic, Key: []byte{byte('a' + i)}, Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	want, err := LogReader{Cluster: brokers}.Offsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	slow := LogReader{Cluster: slowCluster}
	got, err := slow.Offsets(ctx, topic)
	if err != nil {
		t.Fatalf("Offsets through a broker that answers in 1.5 s: %v", err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Offsets through the slow broker %v, directly %v", got, want)
	}
	n := 0
	for part, r := range got {
		err := slow.ReadRange(ctx, topic, part, r.First, r.End, func(Message) error { n++; return nil })
		if err != nil {
			t.Fatalf("ReadRange of partition %d through the slow broker: %v", part, err)
		}
	}
	if n != 4 {
		t.Errorf("read %d records through the slow broker, want 4", n)
	}
}
