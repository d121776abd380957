package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

// composeBroker is the service the policy stage's kafka.brokers names (by
// its service name, which is then the host the stages dial).
func composeBroker(t *testing.T, p *types.Project) types.ServiceConfig {
	t.Helper()
	v := p.Services["policy"].Environment["EARSHOT_KAFKA_BROKERS"]
	if v == nil {
		t.Fatal("policy: EARSHOT_KAFKA_BROKERS is not set")
	}
	host, _, err := hostPortOf(strings.Split(*v, ",")[0])
	if err != nil {
		t.Fatal(err)
	}
	s, ok := p.Services[host]
	if !ok {
		t.Fatalf("kafka.brokers host %q is no service name", host)
	}
	return s
}

// parseProperties reads key=value lines.
func parseProperties(t *testing.T, s string) map[string]string {
	t.Helper()
	props := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("not a property line: %q", line)
		}
		props[k] = v
	}
	return props
}

// brokerProperties runs deploy/kafka.sh properties with the broker
// service's environment and an admin password file holding pw: the
// settings the broker container starts with.
func brokerProperties(t *testing.T, s types.ServiceConfig, pw string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kafka-"+kafkaAdmin+".password"), []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "EARSHOT_KAFKA_SECRETS=" + dir}
	for k, v := range s.Environment {
		if v != nil {
			env = append(env, k+"="+*v)
		}
	}
	cmd := exec.Command("bash", filepath.Join(repoRoot, "deploy", "kafka.sh"), "properties")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("deploy/kafka.sh properties: %v", err)
	}
	return parseProperties(t, string(out))
}

// testbedSecurity runs testbed/kafka.sh's security_properties, the lines
// the test bed's broker and cluster nodes share, with the admin password
// pw and the TLS folder /testbed-tls.
func testbedSecurity(t *testing.T, pw string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "testbed", "kafka.sh"))
	if err != nil {
		t.Fatal(err)
	}
	fn := regexp.MustCompile(`(?ms)^security_properties\(\) \{\n.*?^\}\n`).Find(b)
	if fn == nil {
		t.Fatal("testbed/kafka.sh has no security_properties function")
	}
	script := string(fn) + "TLS_DIR=/testbed-tls\nuser_password() { echo \"$PW\"; }\nsecurity_properties\n"
	cmd := exec.Command("bash", "-euc", script)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "PW=" + pw}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("testbed/kafka.sh security_properties: %v", err)
	}
	return parseProperties(t, string(out))
}

// TestComposeBrokerSecuredAsTestbed: the Compose broker's settings, as
// deploy/kafka.sh hands them to the apache/kafka image, carry every
// security line of the test bed's broker (testbed/kafka.sh, which the
// integration tests run against) with the same values: listener names
// map by role (inter-broker, controller), file locations are the
// container's own. Also: the script maps the variables as the compose
// check models the image's rule.
func TestComposeBrokerSecuredAsTestbed(t *testing.T) {
	p, err := loadProject(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	const pw = "the-admin-password"
	broker := composeBroker(t, p)
	got := brokerProperties(t, broker, pw)
	for k, v := range kafkaProperties(broker.Environment) {
		if got[k] != v {
			t.Errorf("deploy/kafka.sh gives %s=%q; the image's rule as compose_test models it: %q", k, got[k], v)
		}
	}

	tb := testbedSecurity(t, pw)
	// Listener names by role.
	rename := map[string]string{
		strings.ToUpper(tb["inter.broker.listener.name"]): strings.ToUpper(got["inter.broker.listener.name"]),
		strings.ToUpper(tb["controller.listener.names"]):  strings.ToUpper(got["controller.listener.names"]),
	}
	if _, empty := rename[""]; len(rename) != 2 || empty || got["inter.broker.listener.name"] == "" || got["controller.listener.names"] == "" {
		t.Fatalf("listener roles: test bed %q/%q, compose %q/%q", tb["inter.broker.listener.name"], tb["controller.listener.names"], got["inter.broker.listener.name"], got["controller.listener.names"])
	}
	renameKey := func(k string) string {
		for from, to := range rename {
			if p := "listener.name." + strings.ToLower(from) + "."; strings.HasPrefix(k, p) {
				return "listener.name." + strings.ToLower(to) + "." + strings.TrimPrefix(k, p)
			}
		}
		return k
	}
	for k, want := range tb {
		ck := renameKey(k)
		have, ok := got[ck]
		switch {
		case !ok:
			t.Errorf("the test bed's broker sets %s (%s here); the Compose broker does not", k, ck)
		case strings.HasPrefix(want, "/testbed-tls/"): // a file: the container's own path
			if !strings.HasPrefix(have, "/") {
				t.Errorf("%s=%q: want a file in the container, as the test bed's %s", ck, have, want)
			}
		case k == "inter.broker.listener.name" || k == "controller.listener.names":
			if rename[strings.ToUpper(want)] != strings.ToUpper(have) {
				t.Errorf("%s=%q, the test bed's %q", ck, have, want)
			}
		case k == "listener.security.protocol.map":
			tbMap := map[string]string{}
			for _, e := range strings.Split(want, ",") {
				n, proto, _ := strings.Cut(e, ":")
				tbMap[rename[strings.ToUpper(n)]] = proto
			}
			hMap := map[string]string{}
			for _, e := range strings.Split(have, ",") {
				n, proto, _ := strings.Cut(e, ":")
				hMap[strings.ToUpper(n)] = proto
			}
			if len(tbMap) != len(hMap) {
				t.Errorf("%s=%q: other listeners than the test bed's %q", ck, have, want)
			}
			for n, proto := range tbMap {
				if hMap[n] != proto {
					t.Errorf("%s: listener %s speaks %q, the test bed's %s", ck, n, hMap[n], proto)
				}
			}
		case have != want:
			t.Errorf("%s=%q, the test bed's broker has %s=%q", ck, have, k, want)
		}
	}
}
