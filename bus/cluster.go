package bus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Cluster says how to reach a Kafka cluster: where its brokers are, and,
// for a cluster that is not on an isolated loopback, the TLS that encrypts
// and authenticates the brokers and the SASL credentials that name this
// client's principal (whose ACLs decide what it may read and write). Every
// client in this package takes one.
type Cluster struct {
	// Brokers are the bootstrap addresses (host:port). Required.
	Brokers []string
	// TLS, when set, encrypts every connection (SASL_SSL or SSL
	// listeners). An empty ServerName is filled with each broker's host.
	TLS *tls.Config
	// SASL, when set, authenticates as its user with SCRAM-SHA-512.
	SASL *SCRAM
}

// Plain is a Cluster reached without TLS or SASL: the embedded broker and
// other loopback-only brokers.
func Plain(brokers ...string) Cluster { return Cluster{Brokers: brokers} }

// SCRAM is a SCRAM-SHA-512 credential. It prints without the password.
type SCRAM struct {
	Username string
	Password string
}

// String names the user, never the password.
func (s SCRAM) String() string { return "SCRAM-SHA-512 user " + s.Username }

// GoString keeps %#v from printing the password.
func (s SCRAM) GoString() string { return "bus.SCRAM{Username: " + fmt.Sprintf("%q", s.Username) + "}" }

// String lists the brokers and how they are reached, never a password.
func (c Cluster) String() string {
	proto := "PLAINTEXT"
	switch {
	case c.TLS != nil && c.SASL != nil:
		proto = "SASL_SSL"
	case c.TLS != nil:
		proto = "SSL"
	case c.SASL != nil:
		proto = "SASL_PLAINTEXT"
	}
	return strings.Join(c.Brokers, ",") + " (" + proto + ")"
}

// Principal is the Kafka principal this client authenticates as, as ACLs
// name it: "User:<name>", or "User:ANONYMOUS" without SASL.
func (c Cluster) Principal() string {
	if c.SASL == nil {
		return "User:ANONYMOUS"
	}
	return "User:" + c.SASL.Username
}

// As returns c authenticating as another SCRAM user (same brokers and TLS).
func (c Cluster) As(username, password string) Cluster {
	c.SASL = &SCRAM{Username: username, Password: password}
	return c
}

// LoadTLS builds the TLS configuration of a Kafka client: the brokers'
// certificates must chain to the PEM CA bundle in caFile (the system
// roots when empty); certFile and keyFile, when set, are the client's own
// certificate (for listeners that require one); serverName, when set,
// replaces each broker's host as the name checked in its certificate.
func LoadTLS(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("bus: kafka CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("bus: kafka CA file %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("bus: kafka client certificate and key go together: set both or neither")
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("bus: kafka client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func (c Cluster) check() error {
	if len(c.Brokers) == 0 {
		return errors.New("no brokers configured")
	}
	if c.SASL != nil && (c.SASL.Username == "" || c.SASL.Password == "") {
		return errors.New("SASL needs a username and a password")
	}
	return nil
}

// mechanism is the SASL mechanism, or nil without SASL.
func (c Cluster) mechanism() sasl.Mechanism {
	if c.SASL == nil {
		return nil
	}
	m, err := scram.Mechanism(scram.SHA512, c.SASL.Username, c.SASL.Password)
	if err != nil {
		// Only SASLprep can fail (a name or password with characters it
		// forbids); the broker then refuses the login, which Permanent
		// reports, so a mechanism that always fails says the same.
		return failedMechanism{err}
	}
	return m
}

// transport is a kafka-go transport to the cluster.
func (c Cluster) transport(clientID string, metadataTTL time.Duration) *kafka.Transport {
	return &kafka.Transport{ClientID: clientID, DialTimeout: 5 * time.Second, MetadataTTL: metadataTTL,
		TLS: c.tlsConfig(), SASL: c.mechanism()}
}

// dialer is a kafka-go dialer to the cluster (consumer groups and
// partition readers use one).
func (c Cluster) dialer(clientID string) *kafka.Dialer {
	return &kafka.Dialer{ClientID: clientID, Timeout: 10 * time.Second, DualStack: true,
		TLS: c.tlsConfig(), SASLMechanism: c.mechanism()}
}

// tlsConfig is a copy, so kafka-go filling ServerName per broker never
// touches the caller's configuration.
func (c Cluster) tlsConfig() *tls.Config {
	if c.TLS == nil {
		return nil
	}
	return c.TLS.Clone()
}

type failedMechanism struct{ err error }

func (f failedMechanism) Name() string { return scram.SHA512.Name() }

func (f failedMechanism) Start(_ context.Context) (sasl.StateMachine, []byte, error) {
	return nil, nil, fmt.Errorf("%w: %w", kafka.SASLAuthenticationFailed, f.err)
}

// refused explains a broker's refusal in terms an operator can act on:
// which principal may not do what to which resource. Other errors pass
// through unchanged.
func (c Cluster) refused(err error, op, resource string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kafka.SASLAuthenticationFailed):
		return fmt.Errorf("%s was not accepted by the brokers (wrong username or password, or the user does not exist; check kafka.sasl): %w", c.Principal(), err)
	case errors.Is(err, kafka.TopicAuthorizationFailed), errors.Is(err, kafka.GroupAuthorizationFailed),
		errors.Is(err, kafka.ClusterAuthorizationFailed), errors.Is(err, kafka.TransactionalIDAuthorizationFailed):
		return fmt.Errorf("%s may not %s %s (the cluster's ACLs refuse it; see `earshot kafka acls`): %w", c.Principal(), op, resource, err)
	}
	return err
}
