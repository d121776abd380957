// Package deploy holds the container deployment files; its tests check
// docker-compose.yml with the Compose Specification's own loader (the one
// docker compose v2 uses) and against Earshot's configuration.
package deploy

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/compliance/export"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/serve"
	"github.com/earshot/earshot/storage/crypt"
)

const repoRoot = ".."

// TestComposeFile loads docker-compose.yml with full validation and checks
// what the loader cannot know: every stage present, every file a stage
// reads mounted, the deployment-wide keys from one source, every address
// resolvable from where it is used, build targets in the Dockerfile, and
// every EARSHOT_* variable one the configuration reads.
func TestComposeFile(t *testing.T) {
	for _, p := range checkCompose(repoRoot) {
		t.Error(p)
	}
}

// deployFiles are the files the check reads, relative to the repository.
var deployFiles = []string{"docker-compose.yml", "Dockerfile", "README.md", "deploy/earshot.env", "deploy/earshot.yaml"}

// TestComposeCheckFindsFaults breaks a copy of the deployment files in the
// ways a careless edit would and expects the check to name each fault, so
// that TestComposeFile passing means something.
func TestComposeCheckFindsFaults(t *testing.T) {
	cases := []struct {
		name string
		file string // relative to the repository
		// old is replaced by new (old must occur exactly once); a regexp
		// when re is set.
		old, new string
		re       bool
		want     string // in one of the problems
		and      string // also in that problem, when set
	}{
		{name: "undefined secret", file: "docker-compose.yml",
			old: "links.key, operator-token, kafka-ca.pem", new: "links.key, operator-tokn, kafka-ca.pem",
			want: "undefined secret operator-tokn"},
		{name: "stage removed", file: "docker-compose.yml",
			old: `(?ms)^  compliance:\n.*?\n\n`, re: true,
			want: "stage compliance: no service"},
		{name: "janus on host networking", file: "docker-compose.yml",
			old: `ports: ["127.0.0.1:8088:8088"]`, new: "network_mode: host",
			want: "service janus is on network_mode host"},
		{name: "janus removed", file: "docker-compose.yml",
			old: `(?ms)^  janus:\n.*?\n\n`, re: true,
			want: `depends on undefined service "janus"`},
		{name: "room server name unresolvable", file: "docker-compose.yml",
			old: "http://janus:8088/janus", new: "http://janus-gw:8088/janus",
			want: `host "janus-gw" is no service`},
		{name: "misspelt variable", file: "docker-compose.yml",
			old: "EARSHOT_INGEST_JANUS_URL:", new: "EARSHOT_INGEST_JANUS_ULR:",
			want: "EARSHOT_INGEST_JANUS_ULR is not a variable Earshot reads"},
		{name: "misspelt variable in env file", file: "deploy/earshot.env",
			old: "EARSHOT_CRYPTO_CREATE_KEK=", new: "EARSHOT_CRYPTO_CREAT_KEK=",
			want: "EARSHOT_CRYPTO_CREAT_KEK is not a variable Earshot reads"},
		{name: "no KEK secret", file: "docker-compose.yml",
			old: "secrets: [s3-secret, pseudonym.key, kek.key, links.key, kafka-ca.pem", new: "secrets: [s3-secret, pseudonym.key, links.key, kafka-ca.pem",
			want: "service policy: crypto.kek_file=/run/secrets/kek.key is not provided"},
		{name: "stage makes its own KEK", file: "deploy/earshot.env",
			old: "EARSHOT_CRYPTO_KEK_FILE=/run/secrets/kek.key\n", new: "",
			want: "crypto.kek_file=/var/lib/earshot/data/secrets/kek.key is not provided"},
		{name: "link keys differ", file: "docker-compose.yml",
			old: "secrets: [s3-secret, pseudonym.key, kek.key, links.key, kafka-ca.pem", new: "secrets: [s3-secret, pseudonym.key, kek.key, {source: operator-token, target: links.key}, kafka-ca.pem",
			want: "serve.link_secret_file comes from secret:"},
		{name: "operator token not mounted", file: "docker-compose.yml",
			old: "kek.key, links.key, operator-token, kafka-ca.pem", new: "kek.key, links.key, kafka-ca.pem",
			want: "serve.operators[moderator].token_file=/run/secrets/operator-token is not provided"},
		{name: "build target missing", file: "Dockerfile",
			old: "FROM debian:sid AS runtime", new: "FROM debian:sid AS final",
			want: `build target "runtime" is not a stage`},
		{name: "API on the container's loopback", file: "deploy/earshot.env",
			old: "EARSHOT_SERVE_LISTEN=0.0.0.0:8470", new: "EARSHOT_SERVE_LISTEN=127.0.0.1:8470",
			want: "listens on the container's loopback"},
		{name: "Kafka advertises localhost", file: "docker-compose.yml",
			old: "KAFKA_ADVERTISED_LISTENERS: CLIENT://kafka:9092", new: "KAFKA_ADVERTISED_LISTENERS: CLIENT://localhost:9092",
			want: "(advertised by kafka) localhost:9092 is the container's own loopback"},
		{name: "invalid setting", file: "deploy/earshot.env",
			old: "EARSHOT_STORAGE_S3_VERSIONING=true", new: "EARSHOT_STORAGE_S3_VERSIONING=false",
			want: "storage.s3.versioning"},
		{name: "spool not on a volume", file: "docker-compose.yml",
			old: "volumes: [spool:/var/lib/earshot/data]", new: "volumes: [spool:/var/lib/earshot/spool]",
			want: "ingest.spool_dir /var/lib/earshot/data/spool is not on a writable named volume"},
		// Kafka: SASL_SSL only, ACLs, one user per stage.
		{name: "stage without its Kafka user", file: "docker-compose.yml",
			old: "    environment:\n      EARSHOT_KAFKA_SASL_USERNAME: earshot-policy\n", new: "",
			want: "service policy: config:", and: "kafka.sasl.username (EARSHOT_KAFKA_SASL_USERNAME): is empty"},
		{name: "stages without TLS", file: "deploy/earshot.env",
			old: "EARSHOT_KAFKA_TLS_ENABLED=true", new: "EARSHOT_KAFKA_TLS_ENABLED=false",
			want: "service policy: config:", and: "kafka.tls.enabled (EARSHOT_KAFKA_TLS_ENABLED): is false while kafka.sasl is set"},
		{name: "stage without SASL or TLS", file: "docker-compose.yml",
			old:  "      EARSHOT_KAFKA_SASL_USERNAME: earshot-policy\n",
			new:  "      EARSHOT_KAFKA_TLS_ENABLED: \"false\"\n      EARSHOT_KAFKA_TLS_CA_FILE: \"\"\n      EARSHOT_KAFKA_SASL_MECHANISM: \"\"\n      EARSHOT_KAFKA_SASL_PASSWORD_FILE: \"\"\n",
			want: "service policy: talks PLAINTEXT to Kafka"},
		{name: "stage logs in as another stage", file: "docker-compose.yml",
			old: "EARSHOT_KAFKA_SASL_USERNAME: earshot-policy", new: "EARSHOT_KAFKA_SASL_USERNAME: earshot-serve",
			want: `service policy: Kafka user "earshot-serve" is not stage policy's principal "earshot-policy"`},
		{name: "stage has another user's password", file: "docker-compose.yml",
			old: "{source: kafka-earshot-policy.password, target: kafka.password}", new: "{source: kafka-earshot-serve.password, target: kafka.password}",
			want: `service policy: its password for Kafka user "earshot-policy" comes from secret:kafka-earshot-serve.password`},
		{name: "stage user not created", file: "docker-compose.yml",
			old: "      kafka-earshot-policy.password, ", new: "      ",
			want: `service policy: Kafka user "earshot-policy" does not exist`},
		{name: "plaintext client listener", file: "docker-compose.yml",
			old: "CLIENT:SASL_SSL,", new: "CLIENT:PLAINTEXT,",
			want: "service kafka: listener CLIENT speaks PLAINTEXT"},
		{name: "stages reach a plaintext listener", file: "docker-compose.yml",
			old: "CLIENT:SASL_SSL,", new: "CLIENT:PLAINTEXT,",
			want: "service policy: kafka.brokers kafka:9092 is listener CLIENT of service kafka, which speaks PLAINTEXT"},
		{name: "controller reachable from other containers", file: "docker-compose.yml",
			old: "CONTROLLER://127.0.0.1:9093", new: "CONTROLLER://:9093",
			want: "service kafka: controller listener CONTROLLER speaks SASL_PLAINTEXT"},
		{name: "no ACL means access", file: "docker-compose.yml",
			old: `KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND: "false"`, new: `KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND: "true"`,
			want: `service kafka: allow.everyone.if.no.acl.found is "true"`},
		{name: "no authorizer", file: "docker-compose.yml",
			old: `(?m)^ *KAFKA_AUTHORIZER_CLASS_NAME:.*\n`, re: true,
			want: `service kafka: authorizer.class.name is ""`},
		{name: "broker trusts another CA", file: "docker-compose.yml",
			old: "KAFKA_SSL_TRUSTSTORE_LOCATION: /run/secrets/kafka-ca.pem", new: "KAFKA_SSL_TRUSTSTORE_LOCATION: /run/secrets/kafka-broker.pem",
			want: "service kafka: trusts secret:kafka-broker.pem"},
		{name: "broker starts before its users exist", file: "docker-compose.yml",
			old: "    depends_on:\n      kafka-init: {condition: service_completed_successfully}\n", new: "",
			want: "service kafka: no one-shot service it waits for"},
		{name: "ACLs applied as a stage", file: "docker-compose.yml",
			old: "EARSHOT_KAFKA_SASL_USERNAME: admin", new: "EARSHOT_KAFKA_SASL_USERNAME: earshot-serve",
			want: `service kafka-acls: applies the ACLs as Kafka user "earshot-serve", which is no super user`},
		{name: "stage starts before its ACLs", file: "docker-compose.yml",
			old:  "depends_on: &earshot-deps\n      kafka: {condition: service_healthy}\n      kafka-acls: {condition: service_completed_successfully}\n",
			new:  "depends_on: &earshot-deps\n      kafka: {condition: service_healthy}\n",
			want: "service policy: does not wait for service kafka-acls to complete"},
		{name: "user nobody logs in as", file: "docker-compose.yml",
			old: "kafka-earshot-rebroadcast.password]\n", new: "kafka-earshot-rebroadcast.password,\n      {source: kafka-earshot-serve.password, target: kafka-earshot-archive.password}]\n",
			want: `service kafka-init: creates Kafka user "earshot-archive", which no service logs in as`},
		{name: "broker's admin password not the admin user's", file: "docker-compose.yml",
			old: "secrets: [kafka-broker.pem, kafka-ca.pem, kafka-admin.password]", new: "secrets: [kafka-broker.pem, kafka-ca.pem, {source: kafka-earshot-serve.password, target: kafka-admin.password}]",
			want: "service kafka: logs in as admin with secret:kafka-earshot-serve.password, but kafka-init creates that user with secret:kafka-admin.password"},
		{name: "cluster IDs differ", file: "docker-compose.yml",
			old: "    environment: *kafka-env\n", new: "    environment:\n      <<: *kafka-env\n      CLUSTER_ID: 3Q9mQ8ZJRvmQpF8a1lWw2g\n",
			want: "service kafka-init: formats the volume with a CLUSTER_ID other than service kafka's"},
		{name: "nobody applies the ACLs", file: "docker-compose.yml",
			old: "command: [kafka, acls, -apply]", new: "command: [kafka, acls]",
			want: "no service runs `earshot kafka acls -apply`"},
	}
	// The unbroken copy passes, so each failure below is the fault's.
	if ps := checkCompose(copyDeploy(t, "", "", "", false)); len(ps) > 0 {
		t.Fatalf("the unbroken copy has problems: %q", ps)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps := checkCompose(copyDeploy(t, tc.file, tc.old, tc.new, tc.re))
			for _, p := range ps {
				if strings.Contains(p, tc.want) && strings.Contains(p, tc.and) {
					return
				}
			}
			t.Errorf("no problem mentions %q and %q; problems: %q", tc.want, tc.and, ps)
		})
	}
}

// copyDeploy copies deployFiles to a temporary root, with old replaced by
// new in file (when file is set), and returns the root.
func copyDeploy(t *testing.T, file, old, new string, re bool) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range deployFiles {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if f == file {
			var n int
			if re {
				rx := regexp.MustCompile(old)
				n = len(rx.FindAllStringIndex(s, -1))
				s = rx.ReplaceAllLiteralString(s, new)
			} else {
				n = strings.Count(s, old)
				s = strings.Replace(s, old, new, 1)
			}
			if n != 1 {
				t.Fatalf("%s: %q occurs %d times, want once: the fault no longer applies to this file", f, old, n)
			}
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestSecretsScript runs deploy/secrets.sh and reads what it made with the
// loaders the stages use, for every secret the compose file mounts for a
// key: the files an operator creates with it are ones Earshot accepts.
func TestSecretsScript(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		if testbed.Enabled() {
			t.Fatal("openssl is not installed; deploy/secrets.sh needs it (Debian package openssl)")
		}
		t.Skip("not run: openssl is not installed; set EARSHOT_TESTBED=1 to make this a failure")
	}
	dir := t.TempDir()
	out, err := exec.Command("sh", filepath.Join(repoRoot, "deploy", "secrets.sh"), dir).CombinedOutput()
	if err != nil {
		t.Fatalf("deploy/secrets.sh: %v\n%s", err, out)
	}
	// A second run keeps every file: a new KEK would strand what is stored.
	before := readAll(t, dir)
	if out, err := exec.Command("sh", filepath.Join(repoRoot, "deploy", "secrets.sh"), dir).CombinedOutput(); err != nil {
		t.Fatalf("deploy/secrets.sh again: %v\n%s", err, out)
	}
	for name, b := range readAll(t, dir) {
		if before[name] != b {
			t.Errorf("a second run changed %s", name)
		}
	}

	p, err := loadProject(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	// Which secret serves which key, from the services' own mounts.
	loaders := map[string]func(string) error{
		"/run/secrets/kek.key":          func(f string) error { _, err := crypt.LoadLocalKEK(f, false); return err },
		"/run/secrets/pseudonym.key":    func(f string) error { return checkPseudonymSecret(f) },
		"/run/secrets/links.key":        func(f string) error { _, err := serve.LoadOrCreateLinkKey(f); return err },
		"/run/secrets/operator-token":   func(f string) error { _, err := serve.OperatorFromFile("moderator", f); return err },
		"/run/secrets/export.ed25519":   func(f string) error { _, err := export.LoadKey(f); return err },
		"/run/secrets/s3-secret":        func(f string) error { return checkMinLen(f, 8) }, // MinIO's minimum
		"/run/secrets/kafka.password":   checkKafkaPassword,
		"/run/secrets/kafka-ca.pem":     func(f string) error { _, err := bus.LoadTLS(f, "", "", ""); return err },
		"/run/secrets/kafka-broker.pem": func(f string) error { _, err := loadKafkaKeystore(f); return err },
	}
	seen := map[string]bool{}
	for _, s := range p.Services {
		for _, sec := range s.Secrets {
			def := p.Secrets[sec.Source]
			f := filepath.Join(dir, filepath.Base(def.File))
			if _, err := os.Stat(f); err != nil {
				t.Errorf("secret %s (%s): deploy/secrets.sh does not make it: %v", sec.Source, def.File, err)
				continue
			}
			target := sec.Target
			if !path.IsAbs(target) {
				target = path.Join("/run/secrets", target)
			}
			load, ok := loaders[target]
			if kafkaUserSecret.MatchString(target) { // deploy/kafka.sh reads these
				load, ok = checkKafkaPassword, true
			}
			if !ok {
				t.Errorf("service %s: secret %s at %s: this test does not know which loader reads it; add it", s.Name, sec.Source, sec.Target)
				continue
			}
			if seen[sec.Source] {
				continue
			}
			seen[sec.Source] = true
			if err := load(f); err != nil {
				t.Errorf("secret %s made by deploy/secrets.sh: %v", sec.Source, err)
			}
		}
	}
	checkSecretReaders(t, p, dir)
	checkKafkaTLS(t, p, dir)
}

func readAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

func checkPseudonymSecret(f string) error {
	s, err := pseudonym.LoadSecret(f)
	if err != nil {
		return err
	}
	_, err = pseudonym.New(s, 1)
	return err
}

func checkMinLen(f string, n int) error {
	b, err := os.ReadFile(f)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(b))) < n {
		return os.ErrInvalid
	}
	return nil
}
