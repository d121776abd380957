package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestKafkaSecurity(t *testing.T) {
	real := []string{"kafka.embedded=false", "kafka.brokers=k1:9093"}
	secured := append(append([]string{}, real...), "kafka.tls.enabled=true", "kafka.tls.ca_file=/etc/earshot/kafka-ca.pem",
		"kafka.sasl.mechanism=SCRAM-SHA-512", "kafka.sasl.username=earshot-policy")
	tests := []struct {
		name     string
		env, set []string
		wantTLS  KafkaTLS
		wantSASL KafkaSASL
		invalid  string // key named in the error; "" = valid
		invalidN int    // how many problems, when more than one
	}{
		{name: "plaintext real cluster", set: real},
		{
			name:     "per-stage principal from the environment",
			env:      []string{"EARSHOT_KAFKA_SASL_USERNAME=earshot-serve", "EARSHOT_KAFKA_SASL_PASSWORD=pw-from-env"},
			set:      secured,
			wantTLS:  KafkaTLS{Enabled: true, CAFile: "/etc/earshot/kafka-ca.pem"},
			wantSASL: KafkaSASL{Mechanism: MechanismSCRAMSHA512, Username: "earshot-policy", Password: "pw-from-env"},
		},
		{
			name:     "password file and client certificate",
			set:      append(append([]string{}, secured...), "kafka.sasl.password_file=/run/secrets/kafka", "kafka.tls.cert_file=c.pem", "kafka.tls.key_file=k.pem", "kafka.tls.server_name=kafka.internal"),
			wantTLS:  KafkaTLS{Enabled: true, CAFile: "/etc/earshot/kafka-ca.pem", CertFile: "c.pem", KeyFile: "k.pem", ServerName: "kafka.internal"},
			wantSASL: KafkaSASL{Mechanism: MechanismSCRAMSHA512, Username: "earshot-policy", PasswordFile: "/run/secrets/kafka"},
		},
		{name: "no password", set: secured, invalid: "kafka.sasl.password_file"},
		{name: "both passwords", set: append(append([]string{}, secured...), "kafka.sasl.password=a", "kafka.sasl.password_file=f"), invalid: "kafka.sasl.password (EARSHOT_KAFKA_SASL_PASSWORD)"},
		{name: "other mechanism", set: append(append([]string{}, real...), "kafka.tls.enabled=true", "kafka.sasl.mechanism=PLAIN", "kafka.sasl.username=u", "kafka.sasl.password=p"), invalid: "kafka.sasl.mechanism"},
		{name: "SASL without TLS", set: append(append([]string{}, real...), "kafka.sasl.mechanism=SCRAM-SHA-512", "kafka.sasl.username=u", "kafka.sasl.password=p"), invalid: "kafka.tls.enabled"},
		{name: "credentials without mechanism", set: append(append([]string{}, real...), "kafka.sasl.username=u"), invalid: "kafka.sasl.mechanism"},
		{name: "cert without key", set: append(append([]string{}, real...), "kafka.tls.enabled=true", "kafka.tls.cert_file=c.pem"), invalid: "kafka.tls.key_file"},
		{name: "TLS settings while off", set: append(append([]string{}, real...), "kafka.tls.ca_file=ca.pem"), invalid: "kafka.tls.enabled"},
		{name: "embedded with SASL", set: []string{"kafka.sasl.mechanism=SCRAM-SHA-512", "kafka.sasl.username=u", "kafka.sasl.password=p", "kafka.tls.enabled=true"}, invalid: "kafka.embedded"},
		{name: "every problem listed", set: append(append([]string{}, real...), "kafka.sasl.mechanism=GSSAPI", "kafka.tls.cert_file=c"), invalid: "kafka.sasl.mechanism", invalidN: 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := loadChecked(t, tc.env, tc.set, tc.invalid)
			if !ok {
				if tc.invalidN > 0 {
					err := c.Validate()
					if !strings.Contains(err.Error(), fmt.Sprintf("%d problem(s)", tc.invalidN)) {
						t.Errorf("want %d problems listed, got %v", tc.invalidN, err)
					}
				}
				return
			}
			if !reflect.DeepEqual(c.Kafka.TLS, tc.wantTLS) || !reflect.DeepEqual(c.Kafka.SASL, tc.wantSASL) {
				t.Errorf("tls = %+v, sasl = %+v; want %+v, %+v", c.Kafka.TLS, c.Kafka.SASL, tc.wantTLS, tc.wantSASL)
			}
		})
	}
}
