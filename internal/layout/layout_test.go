package layout

import (
	"bytes"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/earshot/earshot/internal/testbed"
)

const module = "github.com/earshot/earshot/"

// goFile is one parsed Go file: where it is and what it imports.
type goFile struct {
	path    string // relative to the module root, slash-separated
	test    bool
	imports []string
}

// goFiles parses the imports of every Go file in the module, skipping what
// runs write (out/) and test data.
func goFiles(t *testing.T) []goFile {
	t.Helper()
	root := testbed.RepoRoot()
	var files []goFile
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "out" || strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		gf := goFile{path: rel, test: strings.HasSuffix(p, "_test.go")}
		for _, im := range f.Imports {
			v, _ := strconv.Unquote(im.Path.Value)
			gf.imports = append(gf.imports, v)
		}
		files = append(files, gf)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 100 {
		t.Fatalf("found only %d Go files under %s: wrong root?", len(files), root)
	}
	return files
}

// TestRootHoldsTheDesignsRooms: the tracked root is the design's own
// names and the project files, nothing else.
func TestRootHoldsTheDesignsRooms(t *testing.T) {
	want := []string{
		".ci", ".dockerignore", ".gitignore", "Dockerfile", "Makefile", "README.md",
		"bus", "cmd", "compliance", "deploy", "docker-compose.yml", "docs", "event",
		"go.mod", "go.sum", "ingest", "internal", "policy", "record", "serve",
		"storage", "testbed", "transcribe",
	}
	out, err := exec.Command("git", "-C", testbed.RepoRoot(), "ls-files").Output()
	if err != nil {
		testbed.Unavailable(t, "git ls-files: "+err.Error())
	}
	var got []string
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		top, _, _ := strings.Cut(f, "/")
		if !slices.Contains(got, top) {
			got = append(got, top)
		}
	}
	slices.Sort(got)
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("%s is tracked at the root: move it under one of the design's folders (docs/architecture.md says where)", g)
		}
	}
}

// TestNoBuildOutputTracked: no compiled binary and nothing over 1 MiB is
// tracked. A stray `go build` output in a package folder is easy to commit
// with `git add` of that folder and stays in every clone's history.
func TestNoBuildOutputTracked(t *testing.T) {
	root := testbed.RepoRoot()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		testbed.Unavailable(t, "git ls-files: "+err.Error())
	}
	const limit = 1 << 20
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue // deleted in the work tree, not yet committed
		}
		switch {
		case bytes.HasPrefix(b, []byte("\x7fELF")):
			t.Errorf("%s is a compiled binary: untrack it (git rm --cached) and build into out/", f)
		case len(b) > limit:
			t.Errorf("%s is %d bytes, over %d: keep large data out of the repository (fetch or generate it in the test bed)", f, len(b), limit)
		}
	}
}

// TestKafkaOnlyInBus: no Go file outside bus, tests and test kits
// included, imports a Kafka client library.
func TestKafkaOnlyInBus(t *testing.T) {
	for _, f := range goFiles(t) {
		if strings.HasPrefix(f.path, "bus/") {
			continue
		}
		for _, im := range f.imports {
			if strings.HasPrefix(im, "github.com/segmentio/kafka-go") || strings.HasPrefix(im, "github.com/twmb/franz-go") {
				t.Errorf("%s imports %s: Kafka is reached only through package bus", f.path, im)
			}
		}
	}
}

// layer of a package path inside the module: its top folder, or
// internal/<name> for the internal packages.
func area(pkg string) string {
	parts := strings.Split(pkg, "/")
	if parts[0] == "internal" && len(parts) > 1 {
		return "internal/" + parts[1]
	}
	return parts[0]
}

// allowed lists, for each area, the areas its non-test code may import.
// Imports run down: event, bus and storage at the bottom, the media core
// (record) above them, the stages above that, serve (which shows what the
// stages made) above the stages, cmd at the top. internal helpers are
// open to all; internal/config, which assembles every stage's settings
// (and so may use their types), only to cmd; the test kits (internal/e2e,
// bustest, compliancetest, badinput, testbed) only to tests and test-only
// packages.
var allowed = map[string][]string{
	"event":      {},
	"bus":        {"event"},
	"storage":    {"event"},
	"record":     {"event", "bus", "storage"},
	"ingest":     {"event", "bus", "storage", "record"},
	"transcribe": {"event", "bus", "storage", "record"},
	"policy":     {"event", "bus", "storage", "record"},
	"compliance": {"event", "bus", "storage", "record"},
	"serve":      {"event", "bus", "storage", "record", "transcribe", "policy", "compliance"},
}

// helpers are internal packages any layer may use: no imports of their
// own from the module's layers.
var helpers = []string{"internal/clock", "internal/fsync", "internal/wer", "internal/speech", "internal/speakerbot"}

// TestImportsRunDown checks every non-test import inside the module
// against allowed, and that helpers import no layer above bus/storage.
func TestImportsRunDown(t *testing.T) {
	for _, f := range goFiles(t) {
		from := area(filepath.ToSlash(filepath.Dir(f.path)))
		for _, im := range f.imports {
			if !strings.HasPrefix(im, module) {
				continue
			}
			to := area(strings.TrimPrefix(im, module))
			if to == from {
				continue
			}
			if to == "cmd" {
				t.Errorf("%s imports %s: nothing imports cmd", f.path, im)
				continue
			}
			if dir := filepath.Dir(f.path); f.test || strings.HasSuffix(dir, "test") || strings.HasSuffix(dir, "bench") {
				continue // tests, test kits (e2etest, storagetest, ...) and benchmark kits (webrtcbench) may use anything below cmd
			}
			ok, known := allowed[from]
			switch {
			case slices.Contains(helpers, to):
				// helpers serve every layer
			case slices.Contains(helpers, from):
				if !slices.Contains([]string{"event", "bus", "storage", "record", "ingest"}, to) && !slices.Contains(helpers, to) {
					t.Errorf("%s imports %s: a shared helper may import only event, bus, storage, record (Ogg), ingest (the Janus client) and other helpers", f.path, im)
				}
			case !known:
				// cmd, deploy, testbed and the test kits sit above the layers
			case !slices.Contains(ok, to):
				t.Errorf("%s imports %s: %s may import only %v (imports run down the layers; see docs/architecture.md)", f.path, im, from, ok)
			}
		}
	}
}
