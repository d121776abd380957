package serve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
)

// MaxNoteBytes bounds an action's note.
const MaxNoteBytes = 4096

// ActionRequest is a moderator's action on an alert.
type ActionRequest struct {
	Action   string // event.ActionAck, ActionConfirm or ActionDismiss
	Operator string // the member of staff, from configuration
	Note     string
}

// Validate checks the request.
func (r ActionRequest) Validate() error {
	var errs []error
	switch r.Action {
	case event.ActionAck, event.ActionConfirm, event.ActionDismiss:
	default:
		errs = append(errs, fmt.Errorf("action %q is not ack, confirm or dismiss", r.Action))
	}
	if strings.TrimSpace(r.Operator) == "" {
		errs = append(errs, errors.New("operator is empty"))
	}
	if len(r.Note) > MaxNoteBytes {
		errs = append(errs, fmt.Errorf("note is %d bytes, over %d", len(r.Note), MaxNoteBytes))
	}
	return errors.Join(errs...)
}

// NewAction builds the alert.action event for an action on alert, ready
// for earshot.alert-actions (key = room). The note is sealed under the
// alert's session and speaker key (moderators may quote what was said), so
// erasing the speaker also erases the notes about them. Its ID derives
// from the alert, the action, the operator and the note, so a retried
// request produces the same event and the index counts it once.
func NewAction(ctx context.Context, keys event.Keys, prod event.Producer, topic string, alert *event.Envelope, r ActionRequest) (*event.Envelope, bus.Message, error) {
	if err := r.Validate(); err != nil {
		return nil, bus.Message{}, fmt.Errorf("serve: alert action: %w", err)
	}
	if topic == "" {
		topic = event.TopicAlertActions
	}
	note := sha256.Sum256([]byte(r.Note))
	e, err := event.New(event.TypeAlertAction, prod, nil, alert.Room, alert.Session, alert.Speaker, nil,
		event.AlertAction{Alert: alert.EventID, Action: r.Action, Operator: r.Operator},
		alert.EventID, r.Action, r.Operator, hex.EncodeToString(note[:]))
	if err != nil {
		return nil, bus.Message{}, fmt.Errorf("serve: alert action: %w", err)
	}
	if err := e.Seal(ctx, keys, event.AlertActionData{Note: r.Note}); err != nil {
		return nil, bus.Message{}, fmt.Errorf("serve: alert action: %w", err)
	}
	b, err := e.Marshal()
	if err != nil {
		return nil, bus.Message{}, err
	}
	return e, bus.Message{Topic: topic, Key: []byte(alert.Room), Value: b}, nil
}
