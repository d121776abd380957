package bus

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// EmbeddedConfig configures the in-process broker.
type EmbeddedConfig struct {
	// Port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// Partitions is the partition count of topics created without one
	// (EnsureTopics with Partitions 0, or auto-creation). Default 3.
	Partitions int
	// AutoCreateTopics lets a metadata request for an unknown topic create
	// it, as a default Kafka broker does. Off by default, like a production
	// cluster should be: topics come from EnsureTopics.
	AutoCreateTopics bool
	// DataDir, when set, makes the broker write its state there and reload
	// it on the next start. Empty keeps everything in memory: records are
	// gone when the process ends.
	DataDir string
	// Logger receives the broker's warnings and errors (requests at debug).
	// Default slog.Default().
	Logger *slog.Logger
}

// Embedded is a single-node Kafka-protocol broker running inside the process
// (franz-go's kfake), for `earshot run` on its embedded defaults and for
// tests. It serves the same kafka-go code paths as a real cluster (produce
// with acks=all, fetch, consumer groups, offset commits, topic creation), but
// it is not Kafka: no replication, and, without DataDir, no durability.
type Embedded struct {
	c    *kfake.Cluster
	addr string
	once sync.Once
}

// NewEmbedded starts the broker on 127.0.0.1 and returns once it answers a
// Kafka request, or with an error when ctx ends first.
func NewEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Partitions <= 0 {
		cfg.Partitions = 3
	}
	opts := []kfake.Opt{
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.WithLogger(kfakeLogger{orDefault(cfg.Logger)}),
		kfake.ClusterID("earshot-embedded"),
	}
	if cfg.Port > 0 {
		opts = append(opts, kfake.Ports(cfg.Port))
	} else {
		opts = append(opts, kfake.NumBrokers(1))
	}
	if cfg.AutoCreateTopics {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("bus: embedded broker: %w", err)
	}
	e := &Embedded{c: c, addr: c.ListenAddrs()[0]}
	if err := e.ping(ctx); err != nil {
		e.Close()
		return nil, fmt.Errorf("bus: embedded broker at %s: %w", e.addr, err)
	}
	return e, nil
}

// ping proves the listener speaks Kafka before callers depend on it.
func (e *Embedded) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tr := &kafka.Transport{ClientID: "earshot-embedded-ping"}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(e.addr), Transport: tr}
	_, err := client.ApiVersions(ctx, &kafka.ApiVersionsRequest{})
	return err
}

// Addr is the broker's host:port.
func (e *Embedded) Addr() string { return e.addr }

// Brokers is Addr as a list of bootstrap addresses.
func (e *Embedded) Brokers() []string { return []string{e.addr} }

// Cluster is how clients reach the broker: plaintext, no SASL (it listens
// on loopback only and has no ACLs).
func (e *Embedded) Cluster() Cluster { return Plain(e.addr) }

// Close stops the broker (persisting its state when DataDir is set). Clients
// still connected get connection errors. It is idempotent.
func (e *Embedded) Close() error {
	e.once.Do(e.c.Close)
	return nil
}

// kfakeLogger maps kfake's levels onto slog. kfake logs every request at
// info, which is debug detail for Earshot.
type kfakeLogger struct{ log *slog.Logger }

func (l kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var lv slog.Level
	switch level {
	case kfake.LogLevelError:
		lv = slog.LevelError
	case kfake.LogLevelWarn:
		lv = slog.LevelWarn
	case kfake.LogLevelNone:
		return
	default:
		lv = slog.LevelDebug
	}
	if !l.log.Enabled(context.Background(), lv) {
		return
	}
	l.log.Log(context.Background(), lv, fmt.Sprintf(format, args...), "component", "bus.embedded")
}
