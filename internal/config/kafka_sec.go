package config

import "slices"

// KafkaTLS encrypts the connections to the brokers and checks their
// certificates (a SASL_SSL or SSL listener).
type KafkaTLS struct {
	// Enabled turns TLS on. It is on whenever kafka.sasl is set: SCRAM
	// over plaintext would leave every record readable on the wire.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle the brokers' certificates must chain to;
	// empty uses the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are this client's certificate and key, for
	// listeners that require one (ssl.client.auth=required).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName, when set, is the name checked in every broker's
	// certificate instead of the host in kafka.brokers.
	ServerName string `yaml:"server_name"`
}

// KafkaSASL authenticates this process as one Kafka principal, whose ACLs
// say what it may read and write (see `earshot kafka acls`). Each stage
// runs as its own principal; set the username and password per process,
// e.g. EARSHOT_KAFKA_SASL_USERNAME and EARSHOT_KAFKA_SASL_PASSWORD.
type KafkaSASL struct {
	// Mechanism is empty (no SASL) or SCRAM-SHA-512.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// Password, or PasswordFile (a file holding it); not both.
	Password     Secret `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// MechanismSCRAMSHA512 is the one SASL mechanism Earshot speaks.
const MechanismSCRAMSHA512 = "SCRAM-SHA-512"

func (k *Kafka) validateSecurity(bad func(key, format string, a ...any)) {
	s, t := k.SASL, k.TLS
	if k.Embedded && (t.Enabled || s.Mechanism != "" || t.CAFile != "") {
		bad("kafka.embedded", "is true while kafka.tls or kafka.sasl is set; the embedded broker listens in plaintext on loopback only: set kafka.embedded: false and kafka.brokers to use a secured cluster")
	}
	if !slices.Contains([]string{"", MechanismSCRAMSHA512}, s.Mechanism) {
		bad("kafka.sasl.mechanism", "%q is not supported; set SCRAM-SHA-512 (or leave it empty for no SASL)", s.Mechanism)
	}
	if s.Mechanism != "" {
		if s.Username == "" {
			bad("kafka.sasl.username", "is empty; set this stage's Kafka user (its principal's name)")
		}
		switch {
		case s.Password == "" && s.PasswordFile == "":
			bad("kafka.sasl.password_file", "is empty; point it at a file holding the Kafka user's password (or set EARSHOT_KAFKA_SASL_PASSWORD)")
		case s.Password != "" && s.PasswordFile != "":
			bad("kafka.sasl.password", "is set together with kafka.sasl.password_file; keep one")
		}
		if !t.Enabled {
			bad("kafka.tls.enabled", "is false while kafka.sasl is set; set kafka.tls.enabled: true (and kafka.tls.ca_file): SASL without TLS sends every record in the clear")
		}
	} else if s.Username != "" || s.Password != "" || s.PasswordFile != "" {
		bad("kafka.sasl.mechanism", "is empty while kafka.sasl credentials are set; set SCRAM-SHA-512")
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		bad("kafka.tls.key_file", "kafka.tls.cert_file and kafka.tls.key_file go together; set both or neither")
	}
	if !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.ServerName != "") {
		bad("kafka.tls.enabled", "is false while other kafka.tls settings are set; set it to true to use them")
	}
}
