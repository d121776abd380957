package deploy

import (
	"maps"
	"net"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/config"
)

// kafkaAdmin is the super user deploy/kafka.sh logs the broker in as; its
// password is /run/secrets/kafka-admin.password there.
const kafkaAdmin = "admin"

// kafkaUserSecret is where deploy/kafka.sh format finds a SCRAM user's
// password: /run/secrets/kafka-<user>.password.
var kafkaUserSecret = regexp.MustCompile(`^/run/secrets/kafka-(.+)\.password$`)

// kafkaExcluded are the KAFKA_* variables the apache/kafka image does not
// turn into broker properties (kafka.docker.KafkaDockerWrapper).
var kafkaExcluded = map[string]bool{
	"KAFKA_VERSION": true, "KAFKA_HEAP_OPTS": true, "KAFKA_LOG4J_OPTS": true, "KAFKA_OPTS": true,
	"KAFKA_JMX_OPTS": true, "KAFKA_JVM_PERFORMANCE_OPTS": true, "KAFKA_GC_LOG_OPTS": true,
	"KAFKA_LOG4J_ROOT_LOGLEVEL": true, "KAFKA_LOG4J_LOGGERS": true, "KAFKA_TOOLS_LOG4J_LOGLEVEL": true,
	"KAFKA_JMX_HOSTNAME": true,
}

// kafkaProperties maps a service's KAFKA_* variables to broker properties
// by the apache/kafka image's rule: drop KAFKA_, lower case, "_" becomes
// ".", then "..." becomes "-" and ".." becomes "_".
func kafkaProperties(env types.MappingWithEquals) map[string]string {
	props := map[string]string{}
	for k, v := range env {
		if v == nil || !strings.HasPrefix(k, "KAFKA_") || kafkaExcluded[k] {
			continue
		}
		p := strings.ToLower(strings.TrimPrefix(k, "KAFKA_"))
		p = strings.ReplaceAll(p, "_", ".")
		p = strings.ReplaceAll(p, "...", "-")
		p = strings.ReplaceAll(p, "..", "_")
		props[p] = *v
	}
	return props
}

// listener is one entry of a Kafka listeners property.
type listener struct{ name, host, port string }

func parseListeners(v string) []listener {
	var out []listener
	for _, l := range strings.Split(v, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(l), "://")
		if !ok {
			continue
		}
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			continue
		}
		out = append(out, listener{strings.ToUpper(name), h, p})
	}
	return out
}

// protocols maps listener names to security protocols: the
// listener.security.protocol.map, else a name that is a protocol is itself.
func protocols(props map[string]string) func(name string) string {
	m := map[string]string{}
	for _, e := range strings.Split(props["listener.security.protocol.map"], ",") {
		if n, p, ok := strings.Cut(strings.TrimSpace(e), ":"); ok {
			m[strings.ToUpper(n)] = strings.ToUpper(p)
		}
	}
	return func(name string) string {
		if p, ok := m[strings.ToUpper(name)]; ok {
			return p
		}
		if slices.Contains([]string{"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}, strings.ToUpper(name)) {
			return strings.ToUpper(name)
		}
		return ""
	}
}

// kafkaBroker is what checkKafka learns about one broker service.
type kafkaBroker struct {
	s          types.ServiceConfig
	props      map[string]string
	superUsers []string
	// users are the SCRAM users its init service creates, with the
	// secret ("secret:NAME") each one's password comes from.
	users map[string]string
	init  string
}

// checkKafka: the broker the Earshot services use is reached over SASL_SSL
// only and authorizes by ACL, as the test bed's; its SCRAM users exist
// before it starts; each stage logs in as its own principal (event.Access)
// with that user's password; the ACLs are applied before any stage
// starts. cfgs are the Earshot services' configurations.
func (c *checker) checkKafka(cfgs map[string]config.Config) {
	principal := map[string]string{}
	for _, a := range event.Access("", "") {
		principal[a.Stage] = a.Principal
	}
	names := slices.Sorted(maps.Keys(cfgs))
	brokers := map[string]*kafkaBroker{}
	brokerOf := map[string]*kafkaBroker{} // Earshot service -> its broker
	for _, name := range names {
		k := cfgs[name].Kafka
		if !k.TLS.Enabled {
			c.bad("service %s: talks PLAINTEXT to Kafka (kafka.tls.enabled is false): set EARSHOT_KAFKA_TLS_ENABLED=true", name)
		}
		if k.SASL.Mechanism == "" {
			c.bad("service %s: logs in to Kafka as no one (kafka.sasl.mechanism is empty): every service has its own SCRAM user", name)
		}
		for _, a := range k.Brokers {
			host, port, err := hostPortOf(a)
			if err != nil {
				continue // reported by checkEarshotService
			}
			s, ok := c.serviceNamed(host)
			if !ok {
				continue
			}
			b := brokers[s.Name]
			if b == nil {
				b = c.kafkaBroker(s)
				brokers[s.Name] = b
			}
			brokerOf[name] = b
			for _, l := range parseListeners(b.props["listeners"]) {
				if l.port == port {
					if p := protocols(b.props)(l.name); p != "SASL_SSL" {
						c.bad("service %s: kafka.brokers %s is listener %s of service %s, which speaks %s: Earshot reaches Kafka over SASL_SSL only", name, a, l.name, s.Name, p)
					}
				}
			}
		}
	}
	acls := c.checkACLService(cfgs, brokerOf)
	usedBy := map[string]string{}
	for _, name := range names {
		s := c.p.Services[name]
		k := cfgs[name].Kafka
		user := k.SASL.Username
		if user == "" {
			continue // config.Validate or the check above said so
		}
		stage := s.Command[0]
		switch {
		case slices.Contains(stages, stage):
			if want, ok := principal[stage]; !ok {
				c.bad("service %s: stage %s has no principal in event.Access", name, stage)
			} else if user != want {
				c.bad("service %s: Kafka user %q is not stage %s's principal %q (event.Access): it would get another stage's ACLs or none", name, user, stage, want)
			}
		case name == acls:
		default:
			c.bad("service %s: runs %q as Kafka user %q, which is no stage's principal", name, s.Command, user)
		}
		if prev, ok := usedBy[user]; ok {
			c.bad("services %s and %s both log in to Kafka as %q: every stage has its own user", prev, name, user)
		} else {
			usedBy[user] = name
		}
		b := brokerOf[name]
		if b == nil || b.init == "" {
			continue
		}
		m, ok := provider(c.mounts(s), k.SASL.PasswordFile)
		if !ok {
			continue // checkEarshotService said so
		}
		switch src, ok := b.users[user]; {
		case !ok:
			c.bad("service %s: Kafka user %q does not exist: %s mounts no /run/secrets/kafka-%s.password to create it", name, user, b.init, user)
		case src != m.source:
			c.bad("service %s: its password for Kafka user %q comes from %s, but %s creates that user with %s", name, user, m.source, b.init, src)
		}
	}
	for _, bn := range slices.Sorted(maps.Keys(brokers)) {
		b := brokers[bn]
		for _, u := range slices.Sorted(maps.Keys(b.users)) {
			if _, ok := usedBy[u]; !ok && u != kafkaAdmin {
				c.bad("service %s: creates Kafka user %q, which no service logs in as", b.init, u)
			}
		}
	}
}

// kafkaBroker checks the broker service s and returns what the other
// checks need.
func (c *checker) kafkaBroker(s types.ServiceConfig) *kafkaBroker {
	props := kafkaProperties(s.Environment)
	b := &kafkaBroker{s: s, props: props, users: map[string]string{}}
	for _, u := range strings.Split(props["super.users"], ";") {
		if u = strings.TrimSpace(u); u != "" {
			b.superUsers = append(b.superUsers, u)
		}
	}
	proto := protocols(props)
	controllers := strings.Split(strings.ToUpper(props["controller.listener.names"]), ",")
	for _, l := range parseListeners(props["listeners"]) {
		p := proto(l.name)
		if slices.Contains(controllers, l.name) {
			ip := net.ParseIP(l.host)
			loopback := l.host == "localhost" || (ip != nil && ip.IsLoopback())
			if p != "SASL_SSL" && (p != "SASL_PLAINTEXT" || !loopback) {
				c.bad("service %s: controller listener %s speaks %s on %q: bind it to localhost with SASL_PLAINTEXT (the admin's login) or use SASL_SSL", s.Name, l.name, p, l.host)
			}
			continue
		}
		if p != "SASL_SSL" {
			c.bad("service %s: listener %s speaks %s: a client listener must be SASL_SSL (no PLAINTEXT path to the bus)", s.Name, l.name, p)
		}
	}
	for _, l := range parseListeners(props["advertised.listeners"]) {
		if p := proto(l.name); p != "SASL_SSL" {
			c.bad("service %s: advertises listener %s, which speaks %s", s.Name, l.name, p)
		}
	}
	if ib := props["inter.broker.listener.name"]; proto(ib) != "SASL_SSL" {
		c.bad("service %s: inter.broker.listener.name %q is not a SASL_SSL listener", s.Name, ib)
	}
	for key, want := range map[string]string{
		"authorizer.class.name":                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"allow.everyone.if.no.acl.found":       "false",
		"sasl.enabled.mechanisms":              config.MechanismSCRAMSHA512,
		"auto.create.topics.enable":            "false",
		"sasl.mechanism.inter.broker.protocol": config.MechanismSCRAMSHA512,
	} {
		if got := props[key]; got != want {
			c.bad("service %s: %s is %q, want %q", s.Name, key, got, want)
		}
	}
	if !slices.Contains(b.superUsers, "User:"+kafkaAdmin) {
		c.bad("service %s: super.users %q lacks User:%s, the broker's own login", s.Name, props["super.users"], kafkaAdmin)
	}
	ms := c.mounts(s)
	for _, key := range []string{"ssl.keystore.location", "ssl.truststore.location"} {
		if _, ok := provider(ms, props[key]); !ok {
			c.bad("service %s: %s %q is not mounted", s.Name, key, props[key])
		}
	}
	if m, ok := provider(ms, props["ssl.truststore.location"]); ok {
		if ca, ok := c.shared["kafka.tls.ca_file"]; ok && ca.source != m.source {
			c.bad("service %s: trusts %s, but service %s's kafka.tls.ca_file is %s: they must be the CA of the broker's certificate", s.Name, m.source, ca.service, ca.source)
		}
	}
	adminPW := path.Join("/run/secrets", "kafka-"+kafkaAdmin+".password")
	adminSrc, adminOK := provider(ms, adminPW)
	if !adminOK {
		c.bad("service %s: %s (the admin's password deploy/kafka.sh run reads) is not mounted", s.Name, adminPW)
	}
	// The init service: a one-shot the broker waits for that formats the
	// same data volume with the users.
	dataDir := props["log.dirs"]
	data, _ := provider(ms, dataDir)
	for _, dn := range slices.Sorted(maps.Keys(s.DependsOn)) {
		if s.DependsOn[dn].Condition != types.ServiceConditionCompletedSuccessfully {
			continue
		}
		init, ok := c.p.Services[dn]
		if !ok {
			continue
		}
		if m, ok := provider(c.mounts(init), dataDir); !ok || data.source == "" || m.source != data.source {
			continue
		}
		b.init = dn
		if ic, bc := init.Environment["CLUSTER_ID"], s.Environment["CLUSTER_ID"]; ic == nil || bc == nil || *ic != *bc {
			c.bad("service %s: formats the volume with a CLUSTER_ID other than service %s's: the image's start would refuse the volume", dn, s.Name)
		}
		for _, sec := range c.mounts(init) {
			if m := kafkaUserSecret.FindStringSubmatch(sec.target); m != nil {
				b.users[m[1]] = sec.source
			}
		}
	}
	switch {
	case b.init == "":
		c.bad("service %s: no one-shot service it waits for (condition service_completed_successfully) formats its data volume %s with the SCRAM users (deploy/kafka.sh format): no login would be accepted", s.Name, dataDir)
	case b.users[kafkaAdmin] == "":
		c.bad("service %s: creates no user %s, the broker's own login", b.init, kafkaAdmin)
	case adminOK && b.users[kafkaAdmin] != adminSrc.source:
		c.bad("service %s: logs in as %s with %s, but %s creates that user with %s", s.Name, kafkaAdmin, adminSrc.source, b.init, b.users[kafkaAdmin])
	}
	return b
}

// checkACLService: one Earshot service runs `earshot kafka acls -apply` as
// a super user once the broker is healthy, and every stage waits for it to
// complete. It returns that service's name. cfgs are the configurations
// that validated.
func (c *checker) checkACLService(cfgs map[string]config.Config, brokerOf map[string]*kafkaBroker) string {
	acls := ""
	for name, s := range c.p.Services {
		cmd := s.Command
		if c.isEarshot(s) && len(cmd) >= 2 && cmd[0] == "kafka" && cmd[1] == "acls" && slices.Contains(cmd, "-apply") {
			acls = name
		}
	}
	if acls == "" {
		c.bad("no service runs `earshot kafka acls -apply`: the stages' topics and ACLs would not exist")
		return ""
	}
	s := c.p.Services[acls]
	if b := brokerOf[acls]; b != nil {
		if u := cfgs[acls].Kafka.SASL.Username; !slices.Contains(b.superUsers, "User:"+u) {
			c.bad("service %s: applies the ACLs as Kafka user %q, which is no super user of service %s", acls, u, b.s.Name)
		}
		if d, ok := s.DependsOn[b.s.Name]; !ok || d.Condition != types.ServiceConditionHealthy {
			c.bad("service %s: does not wait for service %s to be healthy", acls, b.s.Name)
		}
	}
	for _, st := range stages {
		svc, ok := c.p.Services[st]
		if !ok {
			continue
		}
		if d, ok := svc.DependsOn[acls]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
			c.bad("service %s: does not wait for service %s to complete (depends_on condition %s): it would start before its topics and ACLs exist", st, acls, types.ServiceConditionCompletedSuccessfully)
		}
	}
	return acls
}
