package deploy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/earshot/earshot/internal/config"
)

// stages are the Earshot stages a deployment runs, one service each (the
// README's "Running it" table; checkStages holds the README to it).
var stages = []string{"ingest", "transcribe", "policy", "rebroadcast", "serve", "compliance"}

// extraEnv are the EARSHOT_* variables read outside package config: the
// configuration file's path (cmd/earshot main.go) and the CLI commands'
// operator defaults (compliance and alert commands run in the containers).
var extraEnv = map[string]bool{"EARSHOT_CONFIG": true, "EARSHOT_OPERATOR": true, "EARSHOT_TOKEN_FILE": true}

// loadProject loads a compose file the way docker compose v2 does: the
// Compose Specification's schema, then its consistency checks (services,
// networks, volumes, secrets, configs, depends_on), env_file merged into
// each service's environment. The process environment is not used, so the
// result does not depend on the machine.
func loadProject(root string) (*types.Project, error) {
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithConsistency(true), cli.WithNormalization(true), cli.WithResolvedPaths(true))
	if err != nil {
		return nil, fmt.Errorf("compose options: %w", err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		return nil, fmt.Errorf("compose load: %w", err)
	}
	return p, nil
}

// checker collects the problems of one compose project.
type checker struct {
	root     string
	p        *types.Project
	problems []string
	// shared records, per configuration key that every stage must agree
	// on, which source the first service that reads it got it from.
	shared map[string]sharedSource
}

type sharedSource struct{ service, source string }

func (c *checker) bad(format string, a ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, a...))
}

// checkCompose returns every problem found in root's docker-compose.yml and
// the files it names; none means the file loads and is consistent.
func checkCompose(root string) []string {
	root, err := filepath.Abs(root)
	if err != nil {
		return []string{err.Error()}
	}
	p, err := loadProject(root)
	if err != nil {
		return []string{err.Error()}
	}
	c := &checker{root: root, p: p, shared: map[string]sharedSource{}}
	c.checkStages()
	c.checkBuilds()
	c.checkSecretsUsed()
	cfgs := map[string]config.Config{}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range p.Services {
			if !yield(n) {
				return
			}
		}
	}) {
		s := p.Services[name]
		if c.isEarshot(s) {
			if cfg, ok := c.checkEarshotService(s); ok {
				cfgs[name] = cfg
			}
		}
	}
	c.checkKafka(cfgs)
	return c.problems
}

// isEarshot: the service runs the image this repository's Dockerfile builds.
func (c *checker) isEarshot(s types.ServiceConfig) bool {
	return s.Build != nil && filepath.Clean(s.Build.Context) == filepath.Clean(c.root)
}

// checkStages: every stage of the README runs in a service of its name.
func (c *checker) checkStages() {
	readme, err := os.ReadFile(filepath.Join(c.root, "README.md"))
	if err != nil {
		c.bad("README: %v", err)
		return
	}
	_, running, _ := strings.Cut(string(readme), "## Running it")
	running, _, _ = strings.Cut(running, "\n## ")
	for _, st := range stages {
		if !strings.Contains(running, "| `earshot "+st+"` |") {
			c.bad("README's Running it table has no row for `earshot %s`: the stage list of this test is out of date", st)
		}
		s, ok := c.p.Services[st]
		switch {
		case !ok:
			c.bad("stage %s: no service %q runs it", st, st)
		case !c.isEarshot(s):
			c.bad("service %s: does not build the Earshot image from %s", st, c.root)
		case len(s.Command) == 0 || s.Command[0] != st:
			c.bad("service %s: command %q does not run the %s stage", st, s.Command, st)
		}
	}
}

var fromLine = regexp.MustCompile(`(?i)^FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$`)

// dockerfileStages returns the named stages of a Dockerfile.
func dockerfileStages(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := fromLine.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil && m[2] != "" {
			names = append(names, strings.ToLower(m[2]))
		}
	}
	return names, sc.Err()
}

// checkBuilds: every build names a Dockerfile that exists and a target that
// is one of its stages; services without a build name an image.
func (c *checker) checkBuilds() {
	for name, s := range c.p.Services {
		if s.Build == nil {
			continue
		}
		df := s.Build.Dockerfile
		if df == "" {
			df = "Dockerfile"
		}
		if !filepath.IsAbs(df) {
			df = filepath.Join(s.Build.Context, df)
		}
		names, err := dockerfileStages(df)
		if err != nil {
			c.bad("service %s: build: %v", name, err)
			continue
		}
		if t := s.Build.Target; t != "" && !slices.Contains(names, strings.ToLower(t)) {
			c.bad("service %s: build target %q is not a stage of %s (stages: %v)", name, t, df, names)
		}
	}
}

// checkSecretsUsed: a secret no service mounts is a misspelt or forgotten one.
func (c *checker) checkSecretsUsed() {
	used := map[string]bool{}
	for _, s := range c.p.Services {
		for _, sec := range s.Secrets {
			used[sec.Source] = true
		}
	}
	for name := range c.p.Secrets {
		if !used[name] {
			c.bad("secret %s is defined but no service mounts it", name)
		}
	}
}

// mount is one thing a container sees in its file system.
type mount struct {
	target string
	source string // "secret:NAME", "config:NAME", "volume:NAME", "bind:PATH"
	host   string // the file or folder on the host, when there is one
	dir    bool   // a folder (volume or bind): covers paths under it
	rw     bool
}

func (c *checker) mounts(s types.ServiceConfig) []mount {
	var ms []mount
	for _, sec := range s.Secrets {
		t := sec.Target
		if t == "" {
			t = sec.Source
		}
		if !path.IsAbs(t) {
			t = path.Join("/run/secrets", t)
		}
		ms = append(ms, mount{target: t, source: "secret:" + sec.Source, host: c.p.Secrets[sec.Source].File})
	}
	for _, cf := range s.Configs {
		t := cf.Target
		if t == "" {
			t = "/" + cf.Source
		}
		ms = append(ms, mount{target: t, source: "config:" + cf.Source, host: c.p.Configs[cf.Source].File})
	}
	for _, v := range s.Volumes {
		m := mount{target: path.Clean(v.Target), dir: true, rw: !v.ReadOnly}
		switch v.Type {
		case types.VolumeTypeBind:
			m.source, m.host = "bind:"+v.Source, v.Source
		case types.VolumeTypeVolume:
			m.source = "volume:" + v.Source
		default:
			m.source = v.Type + ":" + v.Source
		}
		ms = append(ms, m)
	}
	return ms
}

// provider returns the mount that provides the container path p.
func provider(ms []mount, p string) (mount, bool) {
	p = path.Clean(p)
	for _, m := range ms {
		if p == m.target || (m.dir && strings.HasPrefix(p, m.target+"/")) {
			return m, true
		}
	}
	return mount{}, false
}

// fileUse is a file a stage reads; shared ones must come from the same
// source in every service (the deployment's one KEK, one link key...).
type fileUse struct {
	key, path string
	shared    bool
}

// filesRead lists the files a stage reads with this configuration; stage
// "kafka" is the one-shot `earshot kafka acls`, which reads Kafka's only.
func filesRead(stage string, cfg config.Config) []fileUse {
	var fs []fileUse
	if cfg.Kafka.TLS.CAFile != "" {
		fs = append(fs, fileUse{"kafka.tls.ca_file", cfg.Kafka.TLS.CAFile, true})
	}
	if cfg.Kafka.SASL.PasswordFile != "" {
		fs = append(fs, fileUse{"kafka.sasl.password_file", cfg.Kafka.SASL.PasswordFile, false})
	}
	if stage == "kafka" {
		return fs
	}
	fs = append(fs,
		fileUse{"identity.secret_file", cfg.Identity.SecretFile, true},
		fileUse{"crypto.kek_file", cfg.Crypto.KEKFile, true})
	for _, f := range cfg.Crypto.PreviousKEKFiles {
		fs = append(fs, fileUse{"crypto.previous_kek_files", f, true})
	}
	if cfg.Storage.Backend == "s3" && cfg.Storage.S3.SecretKey == "" {
		fs = append(fs, fileUse{"storage.s3.secret_key_file", cfg.Storage.S3.SecretKeyFile, true})
	}
	switch stage {
	case "transcribe":
		if cfg.Transcribe.Engine == "whisper" {
			fs = append(fs, fileUse{"transcribe.model_path", cfg.Transcribe.ModelPath, false})
		}
		if cfg.Transcribe.APIKeyFile != "" {
			fs = append(fs, fileUse{"transcribe.api_key_file", cfg.Transcribe.APIKeyFile, false})
		}
	case "policy":
		if cfg.Policy.File != "" {
			fs = append(fs, fileUse{"policy.file", cfg.Policy.File, false})
		}
		if cfg.Alerts.Classifier.Enabled {
			fs = append(fs, fileUse{"alerts.classifier.api_key_file", cfg.Alerts.Classifier.APIKeyFile, false})
		}
		for i, s := range cfg.Alerts.Sinks {
			if s.SecretFile != "" {
				fs = append(fs, fileUse{fmt.Sprintf("alerts.sinks[%d].secret_file", i), s.SecretFile, false})
			}
		}
		if len(cfg.Alerts.Sinks) > 0 { // notifications carry signed evidence links
			fs = append(fs, fileUse{"serve.link_secret_file", cfg.Serve.LinkSecretFile, true})
		}
	case "serve":
		fs = append(fs, fileUse{"serve.link_secret_file", cfg.Serve.LinkSecretFile, true})
		for _, op := range cfg.Serve.Operators {
			if op.TokenFile != "" {
				fs = append(fs, fileUse{"serve.operators[" + op.Name + "].token_file", op.TokenFile, false})
			}
		}
	case "compliance":
		fs = append(fs, fileUse{"compliance.signing_key_file", cfg.Compliance.SigningKeyFile, true})
	}
	return fs
}

// addresses lists the host:port addresses a stage connects to.
func addresses(stage string, cfg config.Config) map[string][]string {
	as := map[string][]string{"kafka.brokers": cfg.Kafka.Brokers}
	if stage == "kafka" {
		return as
	}
	if cfg.Storage.Backend == "s3" {
		as["storage.s3.endpoint"] = []string{cfg.Storage.S3.Endpoint}
	}
	switch stage {
	case "ingest":
		as["ingest.janus.url"] = []string{cfg.Ingest.Janus.URL}
	case "transcribe":
		if cfg.Transcribe.Engine == "http" {
			as["transcribe.url"] = []string{cfg.Transcribe.URL.Reveal()}
		}
	}
	return as
}

// effectiveConfig loads the configuration a service's container would: its
// environment, and the configuration file EARSHOT_CONFIG names, read from
// the host file that is mounted there.
func (c *checker) effectiveConfig(s types.ServiceConfig, ms []mount) (config.Config, bool) {
	var environ []string
	cfgPath := ""
	for k, v := range s.Environment {
		if v == nil {
			continue
		}
		if strings.HasPrefix(k, "EARSHOT_") && !extraEnv[k] && !slices.Contains(config.Keys(), envKey(k)) {
			c.bad("service %s: %s is not a variable Earshot reads (see earshot config keys)", s.Name, k)
		}
		if k == "EARSHOT_CONFIG" {
			m, ok := provider(ms, *v)
			if !ok || m.host == "" {
				c.bad("service %s: EARSHOT_CONFIG=%s is not a file mounted into the container", s.Name, *v)
				return config.Config{}, false
			}
			cfgPath = m.host
			if m.dir {
				rel, _ := filepath.Rel(m.target, *v)
				cfgPath = filepath.Join(m.host, rel)
			}
		}
		environ = append(environ, k+"="+*v)
	}
	cfg, err := config.Load(cfgPath, environ, nil)
	if err != nil {
		c.bad("service %s: %v", s.Name, err)
		return cfg, false
	}
	cfg.ResolvePaths()
	if err := cfg.Validate(); err != nil {
		c.bad("service %s: %v", s.Name, err)
		return cfg, false
	}
	return cfg, true
}

// envKey maps EARSHOT_A_B back to the key whose EnvName it is, or "".
func envKey(env string) string {
	for _, k := range config.Keys() {
		if config.EnvName(k) == env {
			return k
		}
	}
	return ""
}

// checkEarshotService checks one service of the Earshot image and returns
// its configuration when that loads and validates.
func (c *checker) checkEarshotService(s types.ServiceConfig) (config.Config, bool) {
	stage := ""
	if len(s.Command) > 0 {
		stage = s.Command[0]
	}
	ms := c.mounts(s)
	cfg, ok := c.effectiveConfig(s, ms)
	if !ok {
		return cfg, false
	}
	for _, f := range filesRead(stage, cfg) {
		m, ok := provider(ms, f.path)
		if !ok {
			c.bad("service %s: %s=%s is not provided by a secret, config or volume", s.Name, f.key, f.path)
			continue
		}
		if f.shared {
			if prev, seen := c.shared[f.key]; seen && prev.source != m.source {
				c.bad("service %s: %s comes from %s, but service %s has it from %s: every stage must use the same one", s.Name, f.key, m.source, prev.service, prev.source)
			} else if !seen {
				c.shared[f.key] = sharedSource{s.Name, m.source}
			}
		}
	}
	if stage == "ingest" {
		if m, ok := provider(ms, cfg.Ingest.SpoolDir); !ok || !m.rw || !strings.HasPrefix(m.source, "volume:") {
			c.bad("service ingest: ingest.spool_dir %s is not on a writable named volume: segments not yet stored would be lost with the container", cfg.Ingest.SpoolDir)
		}
	}
	if stage == "serve" {
		c.checkPublished(s, "serve.listen", cfg.Serve.Listen)
		if prev, ok := c.shared["serve.public_url"]; ok && prev.source != cfg.Serve.PublicURL {
			c.bad("service serve: serve.public_url %s differs from %s's %s: notification links would point elsewhere", cfg.Serve.PublicURL, prev.service, prev.source)
		}
	}
	if stage == "policy" || stage == "serve" {
		if _, ok := c.shared["serve.public_url"]; !ok {
			c.shared["serve.public_url"] = sharedSource{s.Name, cfg.Serve.PublicURL}
		}
	}
	for key, addrs := range addresses(stage, cfg) {
		for _, a := range addrs {
			host, port, err := hostPortOf(a)
			if err != nil {
				c.bad("service %s: %s %q: %v", s.Name, key, a, err)
				continue
			}
			c.checkReach(s, key, host, port, true)
		}
	}
	return cfg, true
}

// checkPublished: a listener the service publishes must listen on the
// container's network, not its loopback.
func (c *checker) checkPublished(s types.ServiceConfig, key, listen string) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		c.bad("service %s: %s %q: %v", s.Name, key, listen, err)
		return
	}
	published := s.NetworkMode == "host"
	for _, p := range s.Ports {
		if strconv.Itoa(int(p.Target)) == port {
			published = true
		}
	}
	if !published {
		c.bad("service %s: %s port %s is not published: nothing outside the container reaches it", s.Name, key, port)
	}
	if ip := net.ParseIP(host); s.NetworkMode != "host" && (host == "localhost" || (ip != nil && ip.IsLoopback())) {
		c.bad("service %s: %s %s listens on the container's loopback: its published port reaches nothing", s.Name, key, listen)
	}
}

// hostPortOf splits a URL or host[:port] into host and port.
func hostPortOf(a string) (string, string, error) {
	if strings.Contains(a, "://") {
		u, err := url.Parse(a)
		if err != nil {
			return "", "", err
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		return u.Hostname(), port, nil
	}
	if h, p, err := net.SplitHostPort(a); err == nil {
		return h, p, nil
	}
	return a, "", nil
}

// checkReach: service from can resolve host and reach it. A service name
// resolves only on a network both services are on (not host networking);
// loopback inside a container is the container itself; a bare name that is
// no service and no extra_hosts entry resolves nowhere. Kafka clients then
// connect to the broker's advertised address, which must resolve too.
func (c *checker) checkReach(from types.ServiceConfig, key, host, port string, followAdvertised bool) {
	if _, ok := from.ExtraHosts[host]; ok {
		return
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		if from.NetworkMode != "host" {
			c.bad("service %s: %s %s:%s is the container's own loopback, where nothing else listens", from.Name, key, host, port)
		}
		return
	}
	to, ok := c.serviceNamed(host)
	if !ok {
		if net.ParseIP(host) == nil && !strings.Contains(host, ".") {
			c.bad("service %s: %s host %q is no service of this file and resolves nowhere", from.Name, key, host)
		}
		return // an outside address
	}
	switch {
	case from.NetworkMode == "host":
		c.bad("service %s: %s %s: a service on network_mode host cannot resolve service names", from.Name, key, host)
		return
	case to.NetworkMode == "host":
		c.bad("service %s: %s %s:%s: service %s is on network_mode host, so no container reaches it by that name", from.Name, key, host, port, to.Name)
		return
	case !sharesNetwork(from, to):
		c.bad("service %s: %s %s: no network in common with service %s", from.Name, key, host, to.Name)
		return
	}
	if _, ok := from.DependsOn[to.Name]; !ok {
		c.bad("service %s: reaches %s (%s) but does not depend_on it", from.Name, to.Name, key)
	}
	if !followAdvertised {
		return
	}
	if adv := advertisedFor(to, port); adv != "" {
		h, p, err := hostPortOf(adv)
		if err != nil {
			c.bad("service %s: advertised listener %q: %v", to.Name, adv, err)
			return
		}
		c.checkReach(from, key+" (advertised by "+to.Name+")", h, p, false)
	}
}

func (c *checker) serviceNamed(host string) (types.ServiceConfig, bool) {
	if s, ok := c.p.Services[host]; ok {
		return s, true
	}
	for _, s := range c.p.Services {
		if s.Hostname == host || s.ContainerName == host {
			return s, true
		}
		for _, n := range s.Networks {
			if n != nil && slices.Contains(n.Aliases, host) {
				return s, true
			}
		}
	}
	return types.ServiceConfig{}, false
}

func sharesNetwork(a, b types.ServiceConfig) bool {
	for n := range a.Networks {
		if _, ok := b.Networks[n]; ok {
			return true
		}
	}
	return false
}

// advertisedFor returns the address a Kafka broker service advertises for
// the listener on port, or "".
func advertisedFor(s types.ServiceConfig, port string) string {
	get := func(k string) string {
		if v := s.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
	name := ""
	for _, l := range strings.Split(get("KAFKA_LISTENERS"), ",") {
		n, addr, ok := strings.Cut(strings.TrimSpace(l), "://")
		if _, p, err := net.SplitHostPort(addr); ok && err == nil && p == port {
			name = n
		}
	}
	for _, l := range strings.Split(get("KAFKA_ADVERTISED_LISTENERS"), ",") {
		if n, addr, ok := strings.Cut(strings.TrimSpace(l), "://"); ok && n == name {
			return addr
		}
	}
	return ""
}
