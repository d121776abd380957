package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// Start positions for a group that has no committed offset on a partition.
const (
	FirstOffset = kafka.FirstOffset // the oldest retained record (default)
	LastOffset  = kafka.LastOffset  // only records produced from now on
)

// ConsumerConfig configures a Consumer. Zero values take the defaults named
// on each field.
type ConsumerConfig struct {
	// Cluster is where the brokers are and how to reach them. Required.
	Cluster Cluster
	// GroupID is the consumer group. Required.
	GroupID string
	// Topics to consume. Required.
	Topics []string
	// MaxInFlight bounds the records handed to the handler and not yet
	// acknowledged, across all partitions. At the bound, fetching pauses
	// until a record is acknowledged. Default 256.
	MaxInFlight int
	// CommitInterval is how often finished offsets are committed. Default
	// 200 ms. A crash replays at most this much finished work (plus
	// everything after the oldest unfinished record).
	CommitInterval time.Duration
	// DrainTimeout is how long a rebalance or a shutdown waits for records in
	// work before committing what is finished and letting the partitions go.
	// It must be shorter than RebalanceTimeout. Default 10 s.
	DrainTimeout time.Duration
	// StartOffset is where a partition without a committed offset starts:
	// FirstOffset (default) or LastOffset.
	StartOffset int64
	// SessionTimeout: a member silent for this long is evicted. Default
	// 15 s. It is also how long a group stalls after its coordinator broker
	// dies: kafka-go rejoins the new coordinator under a new member ID, and
	// the rebalance waits for the old ID's session to expire (measured on a
	// three-broker cluster: about 10 s to elect plus this). It stays above
	// DrainTimeout, during which the member sends no heartbeat.
	SessionTimeout time.Duration
	// HeartbeatInterval; default 3 s (at most a third of SessionTimeout).
	HeartbeatInterval time.Duration
	// RebalanceTimeout is how long the coordinator waits for members to
	// rejoin during a rebalance. Default 30 s.
	RebalanceTimeout time.Duration
	// JoinGroupBackoff is the pause before rejoining after a failed join.
	// Default 2 s.
	JoinGroupBackoff time.Duration
	// MaxWait bounds an idle fetch: records are returned as soon as they
	// exist, so it does not add latency. kafka-go uses it as the socket
	// deadline and asks the broker to answer 1 s before it (a quarter of
	// MaxWait before it when MaxWait is under 1 s); with little slack, idle
	// partitions on a loaded machine hit i/o timeouts and reconnect.
	// Default 3 s.
	MaxWait time.Duration
	// MaxBytes caps one fetch response per partition; it must exceed the
	// largest record. Default 1 MiB.
	MaxBytes int
	// ClientID names this client in the broker's logs. Default "earshot".
	ClientID string
	// Logger receives rebalances, commit failures and kafka-go's retry
	// reports. Default slog.Default().
	Logger *slog.Logger
}

func (cfg *ConsumerConfig) setDefaults() error {
	switch {
	case cfg.Cluster.check() != nil:
		return fmt.Errorf("bus: consumer: %w", cfg.Cluster.check())
	case cfg.GroupID == "":
		return errors.New("bus: consumer: no group ID configured")
	case len(cfg.Topics) == 0:
		return errors.New("bus: consumer: no topics configured")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 256
	}
	def(&cfg.CommitInterval, 200*time.Millisecond)
	def(&cfg.DrainTimeout, 10*time.Second)
	def(&cfg.SessionTimeout, 15*time.Second)
	def(&cfg.HeartbeatInterval, 3*time.Second)
	def(&cfg.RebalanceTimeout, 30*time.Second)
	def(&cfg.JoinGroupBackoff, 2*time.Second)
	def(&cfg.MaxWait, 3*time.Second)
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 1 << 20
	}
	if cfg.StartOffset == 0 {
		cfg.StartOffset = FirstOffset
	}
	if cfg.StartOffset != FirstOffset && cfg.StartOffset != LastOffset {
		return fmt.Errorf("bus: consumer: StartOffset %d is neither FirstOffset nor LastOffset", cfg.StartOffset)
	}
	if cfg.DrainTimeout >= cfg.RebalanceTimeout {
		return fmt.Errorf("bus: consumer: DrainTimeout %v must be shorter than RebalanceTimeout %v, or a slow drain gets this member evicted", cfg.DrainTimeout, cfg.RebalanceTimeout)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "earshot"
	}
	return nil
}

// Handler receives each record. It is called from one goroutine per assigned
// partition, in offset order within a partition, so records with the same key
// arrive in order. It should hand the record off and return quickly: while it
// runs, its partition is not fetched.
//
// The record counts as finished when d.Ack is called, from any goroutine, at
// any later time. A record that fails must be dead-lettered (DeadLetter) and
// then acknowledged; a record never acknowledged holds back its partition's
// commit and is delivered again after the next rebalance or restart.
//
// ctx stays valid while the partition is assigned and, after a revocation or
// shutdown, until DrainTimeout has passed; then it is cancelled and the work
// still running should stop (it will be redelivered). A handler blocked on
// something other than ctx holds up the rebalance or shutdown.
type Handler func(ctx context.Context, d *Delivery)

// Delivery is one consumed record awaiting acknowledgement.
type Delivery struct {
	Message
	ack  func()
	once sync.Once
}

// NewDelivery returns a delivery of m whose Ack calls ack once. Consumers
// other than Consumer (and tests standing in for one) hand records to a
// Handler with it.
func NewDelivery(m Message, ack func()) *Delivery { return &Delivery{Message: m, ack: ack} }

// Ack marks the record finished; the consumer commits past it once every
// older record of its partition is finished too. Only the first call counts.
func (d *Delivery) Ack() {
	if d.ack != nil {
		d.once.Do(d.ack)
	}
}

// PartitionLag describes one assigned partition.
type PartitionLag struct {
	Topic     string
	Partition int
	// End is the offset the next produced record will get (high watermark).
	End int64
	// Committed is the group's committed offset for the partition (the next
	// record to process), or the start of the log when nothing was committed.
	Committed int64
	// Lag is End - Committed: records not yet finished and committed.
	Lag int64
}

// Consumer is a consumer-group member that commits offsets only up to the
// oldest unfinished record of each partition, so a handler may finish records
// in any order (several tracks share a partition) without the commit
// skipping work. Delivery is at least once: after a crash, a rebalance or a
// drain that timed out, records after the last commit are delivered again.
//
// It is built on kafka-go's ConsumerGroup rather than a group Reader because
// only the generation API says when partitions are revoked: at the end of
// each generation the consumer stops fetching, waits up to DrainTimeout for
// records in work, commits what is finished with that generation, and only
// then lets the group rebalance (the eager protocol: every rebalance revokes
// every partition).
type Consumer struct {
	cfg    ConsumerConfig
	log    *slog.Logger
	dialer *kafka.Dialer
	admin  *kafka.Client
	tr     *kafka.Transport
	sem    chan struct{}

	mu      sync.Mutex
	running bool
	closed  bool
	current *generation

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	gens     sync.WaitGroup
}

// NewConsumer validates cfg and builds a Consumer; Run joins the group.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	tr := cfg.Cluster.transport(cfg.ClientID, 0)
	return &Consumer{
		cfg:    cfg,
		log:    orDefault(cfg.Logger).With("group", cfg.GroupID),
		dialer: cfg.Cluster.dialer(cfg.ClientID),
		admin:  &kafka.Client{Addr: kafka.TCP(cfg.Cluster.Brokers...), Transport: tr},
		tr:     tr,
		sem:    make(chan struct{}, cfg.MaxInFlight),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}, nil
}

// Run joins the group and hands records to h until ctx is cancelled or Close
// is called; then it stops fetching, waits up to DrainTimeout for records in
// work, commits what is finished, leaves the group and returns nil. Failures
// to reach the brokers or join the group are logged and retried, not
// returned: a consumer outlives a broker restart. A refusal no retry
// changes (authentication failed, the ACLs deny the group or a topic:
// see Permanent) ends Run with that error. Run may be called once.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	if h == nil {
		return errors.New("bus: consumer: nil handler")
	}
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return fmt.Errorf("bus: consumer %s: %w", c.cfg.GroupID, ErrClosed)
	case c.running:
		c.mu.Unlock()
		return fmt.Errorf("bus: consumer %s: Run called twice", c.cfg.GroupID)
	}
	c.running = true
	c.mu.Unlock()
	defer close(c.done)
	defer c.tr.CloseIdleConnections()

	info, errs := kafkaLoggers(c.log, "bus.consumer")
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    c.cfg.GroupID,
		Brokers:               c.cfg.Cluster.Brokers,
		Dialer:                c.dialer,
		Topics:                c.cfg.Topics,
		HeartbeatInterval:     c.cfg.HeartbeatInterval,
		SessionTimeout:        c.cfg.SessionTimeout,
		RebalanceTimeout:      c.cfg.RebalanceTimeout,
		JoinGroupBackoff:      c.cfg.JoinGroupBackoff,
		WatchPartitionChanges: true,
		StartOffset:           c.cfg.StartOffset,
		Logger:                info,
		ErrorLogger:           errs,
	})
	if err != nil {
		return fmt.Errorf("bus: consumer %s: %w", c.cfg.GroupID, err)
	}

	// Closing the group ends the current generation, whose goroutine drains
	// and commits before the group leaves; cg.Close waits for all of it.
	groupClosed := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-c.stop:
		}
		_ = cg.Close()
		close(groupClosed)
	}()

	var runErr error
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if errors.Is(err, kafka.ErrGroupClosed) || ctx.Err() != nil || c.stopping() {
				break
			}
			if Permanent(err) {
				// Credentials or ACLs refused: no retry changes that, and a
				// member that retries forever hides it from the operator.
				op, what := "read", "topics "+strings.Join(c.cfg.Topics, ",")
				if errors.Is(err, kafka.GroupAuthorizationFailed) {
					op, what = "join", "consumer group "+c.cfg.GroupID
				}
				runErr = fmt.Errorf("bus: consumer %s on %s via brokers %s: %w", c.cfg.GroupID, strings.Join(c.cfg.Topics, ","),
					c.cfg.Cluster, c.cfg.Cluster.refused(err, op, what))
				c.stopOnce.Do(func() { close(c.stop) })
				break
			}
			c.log.Warn("bus: consumer: joining the group failed; retrying",
				"brokers", c.cfg.Cluster.String(), "err", err)
			continue
		}
		c.gens.Add(1)
		gen.Start(func(gctx context.Context) {
			defer c.gens.Done()
			c.serve(gctx, gen, h)
		})
	}
	<-groupClosed
	c.gens.Wait()
	return runErr
}

// Close stops Run as cancelling its context does and waits for it to
// return. It is idempotent; after Close, Run returns ErrClosed.
func (c *Consumer) Close() error {
	c.mu.Lock()
	c.closed = true
	running := c.running
	c.mu.Unlock()
	c.stopOnce.Do(func() { close(c.stop) })
	if running {
		<-c.done
	}
	return nil
}

func (c *Consumer) stopping() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// Lag reports, for each partition assigned in the current generation, the
// end of the log, the committed offset and their difference. It asks the
// brokers for the end offsets. Empty between generations.
func (c *Consumer) Lag(ctx context.Context) ([]PartitionLag, error) {
	c.mu.Lock()
	g := c.current
	c.mu.Unlock()
	if g == nil {
		return nil, nil
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for tp := range g.parts {
		req.Topics[tp.topic] = append(req.Topics[tp.topic], kafka.FirstOffsetOf(tp.partition), kafka.LastOffsetOf(tp.partition))
	}
	res, err := c.admin.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("bus: consumer %s: lag: %w", c.cfg.GroupID, err)
	}
	var out []PartitionLag
	for topic, pos := range res.Topics {
		for _, po := range pos {
			if po.Error != nil {
				return nil, fmt.Errorf("bus: consumer %s: lag of %s/%d: %w", c.cfg.GroupID, topic, po.Partition, po.Error)
			}
			p := g.parts[topicPartition{topic, po.Partition}]
			if p == nil {
				continue
			}
			committed := p.committedOffset()
			if committed < 0 {
				committed = po.FirstOffset
			}
			out = append(out, PartitionLag{
				Topic: topic, Partition: po.Partition,
				End: po.LastOffset, Committed: committed, Lag: max(0, po.LastOffset-committed),
			})
		}
	}
	slices.SortFunc(out, func(a, b PartitionLag) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return a.Partition - b.Partition
	})
	return out, nil
}

type topicPartition struct {
	topic     string
	partition int
}

// generation is this member's view of one group generation: its partitions
// and the records it handed out.
type generation struct {
	id    int32
	parts map[topicPartition]*partition

	mu        sync.Mutex
	inflight  int
	fetching  bool
	abandoned bool          // the generation ended with records unacknowledged
	drained   chan struct{} // closed once fetching stopped and inflight is 0
}

func (g *generation) begin() {
	g.mu.Lock()
	g.inflight++
	g.mu.Unlock()
}

// end accounts for an acknowledged record. It reports whether the record
// still held an in-flight slot: after abandon, the slots were released.
func (g *generation) end() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.abandoned {
		return false
	}
	g.inflight--
	if g.inflight == 0 && !g.fetching {
		close(g.drained)
	}
	return true
}

func (g *generation) stopFetching() {
	g.mu.Lock()
	g.fetching = false
	if g.inflight == 0 {
		close(g.drained)
	}
	g.mu.Unlock()
}

// abandon ends the accounting of records never acknowledged and returns
// how many in-flight slots they held. Their work was cancelled and they are
// delivered again; holding their slots would shrink MaxInFlight for good.
func (g *generation) abandon() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.abandoned = true
	n := g.inflight
	g.inflight = 0
	return n
}

func (g *generation) unfinished() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inflight
}

// partition is one assigned partition within a generation.
type partition struct {
	topicPartition
	start int64 // where fetching starts: a committed offset or FirstOffset/LastOffset

	mu        sync.Mutex
	tr        offsetTracker
	committed int64 // last offset committed by this member, or the start when absolute, else -1
}

func newPartition(topic string, id int, start int64) *partition {
	p := &partition{topicPartition: topicPartition{topic, id}, start: start, committed: -1}
	if start >= 0 {
		p.committed = start
	}
	return p
}

func (p *partition) fetched(off int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tr.add(off)
}

func (p *partition) finished(off int64) {
	p.mu.Lock()
	p.tr.done(off)
	p.mu.Unlock()
}

// toCommit returns the offset to commit when it is past the last commit.
func (p *partition) toCommit() (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	off, ok := p.tr.commitOffset()
	return off, ok && off > p.committed
}

func (p *partition) setCommitted(off int64) {
	p.mu.Lock()
	if off > p.committed {
		p.committed = off
	}
	p.mu.Unlock()
}

func (p *partition) committedOffset() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.committed
}

// serve runs one generation: it fetches every assigned partition, commits
// periodically, and when the generation ends (a rebalance, or Run stopping)
// stops fetching, drains, and commits a last time while the generation is
// still valid. kafka-go does not let the group rejoin before serve returns.
func (c *Consumer) serve(gctx context.Context, gen *kafka.Generation, h Handler) {
	g := &generation{id: gen.ID, parts: map[topicPartition]*partition{}, fetching: true, drained: make(chan struct{})}
	var names []string
	for topic, as := range gen.Assignments {
		for _, a := range as {
			p := newPartition(topic, a.ID, a.Offset)
			g.parts[p.topicPartition] = p
			names = append(names, fmt.Sprintf("%s/%d@%d", topic, a.ID, a.Offset))
		}
	}
	slices.Sort(names)
	log := c.log.With("generation", gen.ID)
	log.Info("bus: consumer: partitions assigned", "member", gen.MemberID, "partitions", strings.Join(names, " "))
	c.mu.Lock()
	c.current = g
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.current = nil
		c.mu.Unlock()
	}()

	// Fetching stops when the generation ends; handlers' work continues
	// until the drain deadline, so a rebalance does not abort finished-soon
	// records.
	fetchCtx, stopFetch := context.WithCancel(context.Background())
	workCtx, cancelWork := context.WithCancel(context.Background())
	defer cancelWork()
	var fetchers sync.WaitGroup
	for _, p := range g.parts {
		fetchers.Add(1)
		go func() {
			defer fetchers.Done()
			c.fetch(fetchCtx, workCtx, g, p, h)
		}()
	}

	tick := time.NewTicker(c.cfg.CommitInterval)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-gctx.Done():
			running = false
		case <-tick.C:
			c.commit(log, gen, g)
		}
	}

	// Drain: fetchers stop (each finishing its current handler call), then
	// records in work get until the deadline to be acknowledged. At the
	// deadline the handlers' context is cancelled, so a handler blocked on
	// it returns and the generation can end.
	stopFetch()
	fetchersDone := make(chan struct{})
	go func() {
		fetchers.Wait()
		g.stopFetching()
		close(fetchersDone)
	}()
	deadline := time.NewTimer(c.cfg.DrainTimeout)
	defer deadline.Stop()
drain:
	for {
		select {
		case <-g.drained:
			break drain
		case <-tick.C:
			c.commit(log, gen, g)
		case <-deadline.C:
			log.Warn("bus: consumer: drain timed out; unfinished records will be delivered again",
				"unfinished", g.unfinished(), "drain_timeout", c.cfg.DrainTimeout)
			break drain
		}
	}
	cancelWork()
	<-fetchersDone
	for range g.abandon() {
		<-c.sem
	}
	c.commit(log, gen, g)
	log.Info("bus: consumer: partitions released")
}

// fetch reads one partition from its start and hands each record to h,
// pausing while MaxInFlight records are unacknowledged.
func (c *Consumer) fetch(fetchCtx, workCtx context.Context, g *generation, p *partition, h Handler) {
	info, errs := kafkaLoggers(c.log, "bus.consumer.fetch")
	// Stopping a reader aborts its fetch with an i/o timeout that kafka-go
	// reports as an error; after the stop it is expected, so demote it.
	errs = quietAfter(fetchCtx, errs, info)
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:         c.cfg.Cluster.Brokers,
		Topic:           p.topic,
		Partition:       p.partition,
		Dialer:          c.dialer,
		MinBytes:        1,
		MaxBytes:        c.cfg.MaxBytes,
		MaxWait:         c.cfg.MaxWait,
		ReadLagInterval: -1,
		Logger:          info,
		ErrorLogger:     errs,
	})
	defer r.Close()
	if err := r.SetOffset(p.start); err != nil {
		c.log.Error("bus: consumer: cannot position the partition reader", "topic", p.topic, "partition", p.partition, "err", err)
		return
	}
	for {
		select {
		case c.sem <- struct{}{}:
		case <-fetchCtx.Done():
			return
		}
		km, err := r.FetchMessage(fetchCtx)
		if err != nil {
			<-c.sem
			if fetchCtx.Err() != nil {
				return
			}
			// kafka-go retries with backoff inside the reader; this only
			// reports what it surfaced.
			c.log.Warn("bus: consumer: fetch failed; retrying", "topic", p.topic, "partition", p.partition,
				"brokers", c.cfg.Cluster.String(), "err", err)
			continue
		}
		if err := p.fetched(km.Offset); err != nil {
			// The reader went backwards: a record already handed out. Skip
			// it rather than track it twice.
			<-c.sem
			c.log.Error("bus: consumer: offset went backwards; record skipped", "topic", p.topic, "partition", p.partition, "err", err)
			continue
		}
		g.begin()
		off := km.Offset
		d := &Delivery{Message: fromKafka(&km)}
		d.ack = func() {
			p.finished(off)
			if g.end() {
				<-c.sem
			}
		}
		h(workCtx, d)
	}
}

// commit commits every partition's finished prefix that moved since the last
// commit. A failure (typically a rebalance under way) is logged and
// tolerated: the records are delivered again, which is at least once.
func (c *Consumer) commit(log *slog.Logger, gen *kafka.Generation, g *generation) {
	offsets := map[string]map[int]int64{}
	type pending struct {
		p   *partition
		off int64
	}
	var todo []pending
	for tp, p := range g.parts {
		off, ok := p.toCommit()
		if !ok {
			continue
		}
		if offsets[tp.topic] == nil {
			offsets[tp.topic] = map[int]int64{}
		}
		offsets[tp.topic][tp.partition] = off
		todo = append(todo, pending{p, off})
	}
	if len(todo) == 0 {
		return
	}
	if err := gen.CommitOffsets(offsets); err != nil {
		log.Warn("bus: consumer: commit failed; records after the last commit will be delivered again", "err", err)
		return
	}
	for _, t := range todo {
		t.p.setCommitted(t.off)
	}
}
