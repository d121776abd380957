package bus

import (
	"errors"
	"fmt"
	"testing"

	"github.com/segmentio/kafka-go"
)

// TestRefused: the brokers' refusals count as refused however they are
// wrapped; unknown topics, unreachable brokers and other errors do not.
func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{kafka.TopicAuthorizationFailed, true},
		{fmt.Errorf("read earshot.alerts: %w", kafka.TopicAuthorizationFailed), true},
		{kafka.GroupAuthorizationFailed, true},
		{kafka.SASLAuthenticationFailed, true},
		{fmt.Errorf("describe: %w", ErrNotAllowed), true},
		{kafka.UnknownTopicOrPartition, false},
		{ErrUnknownTopic, false},
		{kafka.BrokerNotAvailable, false},
		{errors.New("connection refused"), false},
		{nil, false},
	} {
		if got := Refused(tc.err); got != tc.want {
			t.Errorf("Refused(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
