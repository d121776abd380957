package policy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// LoaderConfig configures a Loader.
type LoaderConfig struct {
	// Path is the policy file.
	Path string
	// Interval is how often the file (and the lexicon files it names) is
	// checked for changes (default 2 s).
	Interval time.Duration
	// Logger receives reloads and rejected files (default slog.Default).
	Logger *slog.Logger
	// OnChange, if set, is called with each newly loaded policy (not the
	// first), from the goroutine that called Run or Reload.
	OnChange func(*Policy)
}

// Loader keeps the current policy of a file and reloads it when the file or
// a lexicon file it names changes. A file that does not load keeps the
// previous policy running; the loader logs what is wrong, line by line, once
// per version of the broken file, and Err returns it until a good file
// replaces it.
//
// Changes are found by polling a SHA-256 of the files' contents rather than
// with inotify: editors that write a new file and rename it, and
// Kubernetes ConfigMaps that swap a symlink, both defeat watching one inode,
// while a hash of a few kilobytes every couple of seconds costs nothing and
// sees every real change (and no touch without one).
type Loader struct {
	cfg     LoaderConfig
	cur     atomic.Pointer[Policy]
	mu      sync.Mutex // serialises Reload
	hash    [sha256.Size]byte
	files   []string
	lastErr atomic.Pointer[error]
	stop    chan struct{}
	once    sync.Once
}

// NewLoader loads the policy at cfg.Path; a file that does not load is an
// error here (a service should not start without its policy).
func NewLoader(cfg LoaderConfig) (*Loader, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Loader{cfg: cfg, stop: make(chan struct{})}
	data, err := os.ReadFile(cfg.Path)
	if err != nil {
		return nil, &LoadError{File: cfg.Path, Problems: []Problem{{What: err.Error(), Fix: "check the path in the configuration (policy.file)"}}}
	}
	p, files, err := parse(data, Source{Name: cfg.Path, Dir: os.DirFS(filepath.Dir(cfg.Path))})
	if err != nil {
		return nil, err
	}
	l.files = files
	l.hash = l.fingerprint(data)
	l.cur.Store(p)
	cfg.Logger.Info("policy loaded", "file", cfg.Path, "policy_version", p.Version(), "rules", len(p.rules))
	return l, nil
}

// Policy returns the policy in force.
func (l *Loader) Policy() *Policy { return l.cur.Load() }

// Err returns what is wrong with the file on disk when it was rejected (the
// previous policy is still in force), or nil.
func (l *Loader) Err() error {
	if e := l.lastErr.Load(); e != nil {
		return *e
	}
	return nil
}

// fingerprint hashes the policy file and the lexicon files it names.
func (l *Loader) fingerprint(data []byte) [sha256.Size]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%d\n", len(data))
	h.Write(data)
	dir := filepath.Dir(l.cfg.Path)
	for _, f := range l.files {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			fmt.Fprintf(h, "%s: %v\n", f, err)
			continue
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// Reload checks the files now. changed says a new policy is in force; err
// says the files changed but do not load (the previous policy stays).
func (l *Loader) Reload() (changed bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	data, rerr := os.ReadFile(l.cfg.Path)
	if rerr != nil {
		err = &LoadError{File: l.cfg.Path, Problems: []Problem{{What: rerr.Error(), Fix: "restore the file; the previous policy stays in force meanwhile"}}}
		return false, l.reject(err, [sha256.Size]byte{1})
	}
	sum := l.fingerprint(data)
	if sum == l.hash {
		return false, l.Err()
	}
	p, files, perr := parse(data, Source{Name: l.cfg.Path, Dir: os.DirFS(filepath.Dir(l.cfg.Path))})
	l.files = files
	sum = l.fingerprint(data)
	if perr != nil {
		return false, l.reject(perr, sum)
	}
	l.hash = sum
	old := l.cur.Swap(p)
	l.lastErr.Store(nil)
	l.cfg.Logger.Info("policy reloaded", "file", l.cfg.Path, "policy_version", p.Version(), "previous_version", old.Version(), "rules", len(p.rules))
	if l.cfg.OnChange != nil {
		l.cfg.OnChange(p)
	}
	return true, nil
}

// reject records a broken file and logs it once per distinct content.
func (l *Loader) reject(err error, sum [sha256.Size]byte) error {
	if sum == l.hash {
		return l.Err()
	}
	l.hash = sum
	l.lastErr.Store(&err)
	attrs := []any{"file", l.cfg.Path, "policy_version", l.cur.Load().Version()}
	var le *LoadError
	if errors.As(err, &le) {
		for _, p := range le.Problems {
			attrs = append(attrs, "problem", p.String())
		}
	} else {
		attrs = append(attrs, "err", err)
	}
	l.cfg.Logger.Error("policy file rejected; previous policy stays in force", attrs...)
	return err
}

// Run polls for changes until ctx ends or Close is called. Errors of
// individual reloads are logged and kept in Err; Run itself returns nil.
func (l *Loader) Run(ctx context.Context) error {
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.stop:
			return nil
		case <-t.C:
			_, _ = l.Reload()
		}
	}
}

// Close stops Run. It is idempotent.
func (l *Loader) Close() error {
	l.once.Do(func() { close(l.stop) })
	return nil
}
