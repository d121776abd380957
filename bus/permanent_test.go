package bus

import (
	"fmt"
	"testing"

	"github.com/segmentio/kafka-go"
)

// TestPermanent: refusals no retry changes are permanent; an unreachable
// cluster and consumer-group churn (members starting or dying together)
// are not, so a consumer joins again instead of ending its stage.
func TestPermanent(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{kafka.TopicAuthorizationFailed, true},
		{kafka.GroupAuthorizationFailed, true},
		{kafka.SASLAuthenticationFailed, true},
		{kafka.InvalidReplicationFactor, true},
		{kafka.BrokerNotAvailable, false},
		{kafka.NetworkException, false},
		{kafka.GroupCoordinatorNotAvailable, false},
		{kafka.RebalanceInProgress, false},
		{kafka.UnknownMemberId, false},
		{kafka.IllegalGeneration, false},
		{kafka.MemberIDRequired, false},
		{fmt.Errorf("sync group: %w", kafka.RebalanceInProgress), false},
		{fmt.Errorf("plain error"), false},
	} {
		if got := Permanent(tc.err); got != tc.want {
			t.Errorf("Permanent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
