package audit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/compliancetest"
)

// TestAuditOnTestbed: entries go to versitygw and to a Kafka topic; the
// topic's records match the stored chain; removing an entry from the
// bucket (a delete marker, as an operator with S3 access would leave)
// makes Verify fail naming it, and so does removing every version of it.
func TestAuditOnTestbed(t *testing.T) {
	brokers := bustest.Kafka(t)
	s3 := compliancetest.NewS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := compliancetest.Unique("compliance-helper-audit-")
	if err := bus.EnsureTopics(ctx, brokers, bus.TopicSpec{Name: topic, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	compliancetest.DeleteTopicAtEnd(t, brokers, topic)
	p, err := bus.NewProducer(bus.ProducerConfig{Cluster: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	log, err := audit.New(ctx, audit.Config{Store: s3.Store, Sender: p, Topic: topic, Producer: event.Producer{Name: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{audit.ActionHoldSet, audit.ActionErase, audit.ActionExport, audit.ActionHoldLift} {
		if err := log.Record(ctx, event.AuditEntry{Operator: "officer", Action: a, Subject: "r1_room", Reason: "case", Outcome: audit.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := audit.Verify(ctx, s3.Store)
	if err != nil || rep.Entries != 4 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	var anchors []event.AuditEntry
	for i, m := range compliancetest.ReadTopic(t, brokers, topic) {
		e, err := event.Decode(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		var a event.AuditEntry
		if err := e.DecodePayload(&a); err != nil {
			t.Fatal(err)
		}
		if a.Seq != int64(i+1) || audit.Hash(a) != a.Hash {
			t.Fatalf("record %d: %+v", i, a)
		}
		anchors = append(anchors, a)
	}
	if len(anchors) != 4 || anchors[3].Hash != rep.Head {
		t.Fatalf("%d records on the topic, head %s", len(anchors), rep.Head)
	}
	// Removing the newest entry is caught against the Kafka copy.
	if err := s3.Store.Delete(ctx, audit.Key(4)); err != nil {
		t.Fatal(err)
	}
	var ce *audit.ChainError
	if _, err := audit.Verify(ctx, s3.Store, audit.VerifyOptions{Anchors: anchors}); !errors.As(err, &ce) || ce.Seq != 4 {
		t.Fatalf("after removing entry 4: %v", err)
	}
	if err := s3.Store.DeleteAll(ctx, audit.Key(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(ctx, s3.Store); !errors.As(err, &ce) || ce.Seq != 2 || ce.Key != audit.Key(2) {
		t.Fatalf("after removing entry 2: %v", err)
	}
}
