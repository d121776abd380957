package bus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/segmentio/kafka-go"
)

// Permanent reports whether err is the brokers' considered refusal, which
// asking again will not change (a topic that cannot be created as asked,
// authorisation or authentication refused, a broker certificate that
// does not verify, an invalid request), as
// opposed to a cluster that could not be reached or was not ready: those
// a stage retries with backoff, these make it exit.
func Permanent(err error) bool {
	// A broker certificate that does not verify will not verify on the
	// next attempt either: the CA file or the server name is wrong.
	var cve *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var authErr x509.UnknownAuthorityError
	if errors.As(err, &cve) || errors.As(err, &hostErr) || errors.As(err, &authErr) {
		return true
	}
	var ke kafka.Error
	if !errors.As(err, &ke) {
		return false
	}
	switch ke {
	case kafka.BrokerNotAvailable, kafka.NotController, kafka.NetworkException, kafka.KafkaStorageError:
		// The client reports an unreachable cluster this way; kafka-go
		// does not count these as temporary.
		return false
	case kafka.RebalanceInProgress, kafka.UnknownMemberId, kafka.IllegalGeneration, kafka.MemberIDRequired:
		// Group churn: another member joined or left while this one was
		// joining or syncing (members starting together, a member
		// killed); joining again is the cure. kafka-go does not count
		// them as temporary.
		return false
	}
	return !ke.Temporary()
}

// CheckReplication fails when a topic has fewer replicas than want: a
// topic created earlier, by hand or with other settings, that would keep
// less copies of the data than the deployment asks for. The error wraps
// kafka.InvalidReplicationFactor, so Permanent reports it.
func CheckReplication(ctx context.Context, cl Cluster, topics []string, want int) error {
	if want <= 0 || len(topics) == 0 {
		return nil
	}
	client, done, err := adminClient(cl)
	if err != nil {
		return fmt.Errorf("bus: check replication: %w", err)
	}
	defer done()
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("bus: check replication: %w", err)
	}
	var short []string
	for _, t := range md.Topics {
		if !slices.Contains(topics, t.Name) {
			continue
		}
		for _, p := range t.Partitions {
			if len(p.Replicas) < want {
				short = append(short, fmt.Sprintf("%s has %d replicas", t.Name, len(p.Replicas)))
				break
			}
		}
	}
	if len(short) > 0 {
		return fmt.Errorf("bus: kafka.replication_factor asks %d replicas but %s (recreate the topics or lower the setting): %w",
			want, strings.Join(short, ", "), kafka.InvalidReplicationFactor)
	}
	return nil
}
