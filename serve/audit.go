package serve

import (
	"context"
	"fmt"
	"strconv"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
)

// Auditor records who accessed what. Every request to the API, allowed or
// refused, produces one entry; an allowed request whose entry cannot be
// recorded is refused (no unaudited access to evidence). package audit's
// hash-chained Log implements it.
type Auditor interface {
	Record(ctx context.Context, e event.AuditEntry) error
}

// Audit actions the API records.
const (
	AuditEvidenceRead  = "evidence.read"  // the evidence document (excerpt)
	AuditEvidenceAudio = "evidence.audio" // the audio cut
	AuditAlertsList    = "alerts.list"
	AuditAlertAction   = "alert.action"
)

// Audit outcomes.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
	OutcomeFailed = "failed"
)

// KafkaAuditor publishes each entry as an event.TypeAudit event (key =
// subject) without a hash chain: for setups without package audit's Log.
type KafkaAuditor struct {
	Sender   bus.Sender
	Topic    string // default event.TopicAudit
	Producer event.Producer
}

var _ Auditor = (*KafkaAuditor)(nil)

// Record implements Auditor.
func (k *KafkaAuditor) Record(ctx context.Context, e event.AuditEntry) error {
	topic := k.Topic
	if topic == "" {
		topic = event.TopicAudit
	}
	env, err := event.New(event.TypeAudit, k.Producer, nil, "", "", "", nil, e,
		"audit", e.Time.UTC().Format("2006-01-02T15:04:05.000000000Z"), e.Operator, e.Action, e.Subject, e.Outcome, strconv.FormatInt(e.Seq, 10))
	if err != nil {
		return fmt.Errorf("serve: audit entry: %w", err)
	}
	env.Time = e.Time.UTC()
	b, err := env.Marshal()
	if err != nil {
		return fmt.Errorf("serve: audit entry: %w", err)
	}
	key := e.Subject
	if key == "" {
		key = e.Action
	}
	if err := k.Sender.Produce(ctx, bus.Message{Topic: topic, Key: []byte(key), Value: b}); err != nil {
		return fmt.Errorf("serve: publish audit entry: %w", err)
	}
	return nil
}
