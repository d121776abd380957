package deploy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/earshot/earshot/bus"
)

// checkKafkaPassword reads a Kafka password file as the stages do (trimmed,
// not empty) and wants one nobody guesses.
func checkKafkaPassword(f string) error {
	if err := checkMinLen(f, 32); err != nil {
		return fmt.Errorf("kafka password %s: shorter than 32 characters: %w", f, err)
	}
	return nil
}

// loadKafkaKeystore reads a file the way Kafka's ssl.keystore.type=PEM
// does: an unencrypted PKCS#8 private key, then the certificate chain; the
// key must be the first certificate's.
func loadKafkaKeystore(f string) (tls.Certificate, error) {
	b, err := os.ReadFile(f)
	if err != nil {
		return tls.Certificate{}, err
	}
	var types []string
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		types = append(types, blk.Type)
		if blk.Type == "PRIVATE KEY" {
			if _, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err != nil {
				return tls.Certificate{}, fmt.Errorf("keystore %s: key: %w", f, err)
			}
		}
	}
	if len(types) < 2 || types[0] != "PRIVATE KEY" || strings.Join(types[1:], ",") != strings.TrimSuffix(strings.Repeat("CERTIFICATE,", len(types)-1), ",") {
		return tls.Certificate{}, fmt.Errorf("keystore %s holds PEM blocks %q; Kafka's PEM keystore wants an unencrypted PKCS#8 PRIVATE KEY, then CERTIFICATEs", f, types)
	}
	pair, err := tls.X509KeyPair(b, b)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("keystore %s: %w", f, err)
	}
	return pair, nil
}

// secretFile is the file deploy/secrets.sh made in dir for the secret a
// service mounts at target, or "".
func secretFile(p *types.Project, s types.ServiceConfig, target, dir string) string {
	c := &checker{p: p}
	if m, ok := provider(c.mounts(s), target); ok && strings.HasPrefix(m.source, "secret:") {
		return filepath.Join(dir, filepath.Base(m.host))
	}
	return ""
}

// checkKafkaTLS: a stage's TLS settings (bus.LoadTLS with its CA file, the
// host of kafka.brokers) accept the broker's keystore that deploy/secrets.sh
// made, in a real handshake on loopback; a client expecting another name
// is refused, so the name is checked.
func checkKafkaTLS(t *testing.T, p *types.Project, dir string) {
	t.Helper()
	stage := p.Services["policy"]
	broker := composeBroker(t, p)
	host := broker.Name // the name the stages dial, so the one the certificate must carry
	caFile := ""
	if v := stage.Environment["EARSHOT_KAFKA_TLS_CA_FILE"]; v != nil {
		caFile = *v
	}
	keystore := secretFile(p, broker, kafkaProperties(broker.Environment)["ssl.keystore.location"], dir)
	ca := secretFile(p, stage, caFile, dir)
	if keystore == "" || ca == "" {
		t.Fatalf("broker keystore %q or stage CA file %q is not a mounted secret", keystore, ca)
	}
	pair, err := loadKafkaKeystore(keystore)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the broker side: handshake every connection until closed
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	defer wg.Wait()
	defer ln.Close()
	for _, tc := range []struct {
		name   string
		ok     bool
		server string
	}{{"as the stages dial it", true, host}, {"under another name", false, "kafka-other"}} {
		cfg, err := bus.LoadTLS(ca, "", "", "")
		if err != nil {
			t.Fatal(err)
		}
		cfg.ServerName = tc.server
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err == nil {
			c.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("TLS to the broker's certificate %s (%q): error %v, want success %v", tc.name, tc.server, err, tc.ok)
		}
	}
}

// imageUsers are the users of the public images the compose file runs when
// a service does not set one: apache/kafka runs as its appuser (UID 1000),
// MinIO as root.
var imageUsers = map[string]uint32{"apache/kafka": 1000, "minio/minio": 0}

// serviceUID is the UID a service's processes run as.
func serviceUID(root string, s types.ServiceConfig, isEarshot bool) (uint32, error) {
	u := s.User
	if u == "" && isEarshot {
		var err error
		if u, err = dockerfileUser(filepath.Join(root, "Dockerfile")); err != nil {
			return 0, err
		}
	}
	if u == "" {
		image, _, _ := strings.Cut(s.Image, ":")
		uid, ok := imageUsers[image]
		if !ok {
			return 0, fmt.Errorf("service %s: image %s: this test does not know its user; add it to imageUsers", s.Name, s.Image)
		}
		return uid, nil
	}
	if u == "root" || strings.HasPrefix(u, "root:") {
		return 0, nil
	}
	n, err := strconv.ParseUint(strings.Split(u, ":")[0], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("service %s: user %q is not numeric", s.Name, u)
	}
	return uint32(n), nil
}

// dockerfileUser returns the last USER of a Dockerfile (the final stage's).
func dockerfileUser(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	u := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) == 2 && strings.EqualFold(fs[0], "USER") {
			u = fs[1]
		}
	}
	if u == "" && sc.Err() == nil {
		return "", errors.New(file + " sets no USER")
	}
	return u, sc.Err()
}

// checkSecretReaders: every service can read each secret it mounts, as its
// own user, with the owner and mode deploy/secrets.sh gave the file (the
// file is mounted as it is); only certificates are readable by others.
// Owners are set only when the script runs as root.
func checkSecretReaders(t *testing.T, p *types.Project, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Log("owners not checked: deploy/secrets.sh sets them only when run as root")
		return
	}
	c := &checker{root: p.WorkingDir, p: p}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		if len(s.Secrets) == 0 {
			continue
		}
		uid, err := serviceUID(p.WorkingDir, s, c.isEarshot(s))
		if err != nil {
			t.Error(err)
			continue
		}
		for _, sec := range s.Secrets {
			f := filepath.Join(dir, filepath.Base(p.Secrets[sec.Source].File))
			fi, err := os.Stat(f)
			if err != nil {
				continue // reported by the loaders' loop
			}
			st := fi.Sys().(*syscall.Stat_t)
			mode := fi.Mode().Perm()
			if uid != 0 && !(st.Uid == uid && mode&0o400 != 0) && mode&0o004 == 0 {
				t.Errorf("service %s runs as UID %d but secret %s is owned by %d, mode %o: it cannot read it", name, uid, sec.Source, st.Uid, mode)
			}
			if mode&0o077 != 0 {
				if err := onlyCertificates(f); err != nil {
					t.Errorf("secret %s is mode %o, readable by others: %v", sec.Source, mode, err)
				}
			}
		}
	}
}

// onlyCertificates: the file holds PEM certificates and nothing else.
func onlyCertificates(f string) error {
	b, err := os.ReadFile(f)
	if err != nil {
		return err
	}
	n := 0
	for rest := b; ; n++ {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if strings.TrimSpace(string(rest)) != "" || n == 0 {
				return errors.New("it holds more than PEM certificates")
			}
			return nil
		}
		if blk.Type != "CERTIFICATE" {
			return fmt.Errorf("it holds a %s", blk.Type)
		}
	}
}
