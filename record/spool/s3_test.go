package spool

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/storagetest"
)

// s3Config returns a configuration for a fresh bucket on the test bed's
// versitygw; the bucket and its objects go when the test ends.
func s3Config(t *testing.T) storage.S3Config { return storagetest.S3Bucket(t, "earshot-spool") }

func newS3(t *testing.T, cfg storage.S3Config) *storage.S3 { return storagetest.NewS3(t, cfg) }

// The same behaviour on versitygw as on the local store.
func TestS3(t *testing.T) {
	tests := []struct {
		name string
		fn   func(*testing.T, storage.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Restart", testRestart},
		{"Conflict", testConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newS3(t, s3Config(t))) })
	}
}

// S3 unreachable (its port refuses connections) for a while: nothing is
// lost, the entries wait in order, and the spool drains once the port
// serves again.
func TestS3Outage(t *testing.T) {
	cfg := s3Config(t)
	direct := newS3(t, cfg) // creates the bucket
	p := startProxy(t, cfg.Endpoint)
	viaProxy := cfg
	viaProxy.Endpoint = p.addr
	viaProxy.MaxRetries = 1
	store := newS3(t, viaProxy)

	p.down()
	s := openSpool(t, t.TempDir())
	var segs []Segment
	for seq := range int64(3) {
		for _, sp := range []string{"alice", "bob"} {
			segs = append(segs, testSeg(sp, seq))
			put(t, s, segs[len(segs)-1])
		}
	}
	snd := &fakeSender{}
	u, _ := startUploader(t, UploaderConfig{Spool: s, Store: store, Sender: snd, BackoffMin: 50 * time.Millisecond, BackoffMax: 300 * time.Millisecond})
	// Down long enough for the backoff to reach its cap (a few seconds).
	waitFor(t, "uploads to fail for a while", func() bool { return u.Stats().Retries >= 16 })
	if got, _ := s.Pending(); len(got) != len(segs) || len(snd.sent()) != 0 {
		t.Fatalf("during the outage: %d pending, %d announced; want %d and 0", len(got), len(snd.sent()), len(segs))
	}
	if err := p.up(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the spool to drain", func() bool { return s.Usage().Entries == 0 && u.Stats().Uploaded == int64(len(segs)) })
	checkAnnounced(t, announced(t, snd.sent()), segs...)
	for _, seg := range segs {
		checkStored(t, direct, seg)
	}
	t.Logf("stats after the outage: %+v", u.Stats())
}

// tcpProxy forwards a loopback port to target while up; while down the
// port is closed (connections are refused) and open connections are cut.
type tcpProxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{target: target, addr: "127.0.0.1:0", conns: map[net.Conn]bool{}}
	if err := p.up(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.down(); p.wg.Wait() })
	return p
}

func (p *tcpProxy) up() error {
	ln, err := net.Listen("tcp", p.addr) // the same port again after down
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.forward(c) })
		}
	})
	return nil
}

func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

func (p *tcpProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *tcpProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *tcpProxy) forward(client net.Conn) {
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	server, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src) // errors end the connection, as they would without a proxy
		done <- struct{}{}
	}
	p.wg.Go(func() { cp(server, client) })
	p.wg.Go(func() { cp(client, server) })
	<-done // either side ending ends the connection
}
