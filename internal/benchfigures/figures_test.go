package benchfigures

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// figureName is what testbed/figures.sh takes for a figure: a unit that is
// a snake_case name (other units, such as ns/op or tone-rel-ms, are not
// figures).
var figureName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// repoRoot is the module's root: the nearest folder above with a go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's folder")
		}
		dir = parent
	}
}

// listed reads testbed/figures.txt: each figure's direction.
func listed(t *testing.T, root string) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "testbed", "figures.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dirs := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		switch {
		case len(fields) < 3:
			t.Errorf("figures.txt:%d: %q: want name, higher or lower, and what it measures", n, line)
		case !figureName.MatchString(fields[0]):
			t.Errorf("figures.txt:%d: %q is not a snake_case name", n, fields[0])
		case fields[1] != "higher" && fields[1] != "lower":
			t.Errorf("figures.txt:%d: %s: direction %q, want higher or lower", n, fields[0], fields[1])
		}
		if len(fields) < 2 {
			continue
		}
		if _, dup := dirs[fields[0]]; dup {
			t.Errorf("figures.txt:%d: %s listed twice", n, fields[0])
		}
		dirs[fields[0]] = fields[1]
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return dirs
}

// pkgFiles is one folder's parsed _test.go files.
type pkgFiles struct {
	fset  *token.FileSet
	files []*ast.File
}

// eachCall calls fn with every call in the folder's function bodies and
// the function it is in.
func (p *pkgFiles) eachCall(fn func(*ast.FuncDecl, *ast.CallExpr)) {
	for _, f := range p.files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok {
					fn(fd, call)
				}
				return true
			})
		}
	}
}

// testPackages parses every _test.go file under root, by folder, leaving
// out hidden folders, testdata and vendor.
func testPackages(t *testing.T, root string) map[string]*pkgFiles {
	t.Helper()
	pkgs := map[string]*pkgFiles{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		dir := filepath.Dir(path)
		p := pkgs[dir]
		if p == nil {
			p = &pkgFiles{fset: token.NewFileSet()}
			pkgs[dir] = p
		}
		f, err := parser.ParseFile(p.fset, path, nil, 0)
		if err != nil {
			return err
		}
		p.files = append(p.files, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// reported returns every name passed to a ReportMetric call in the
// repository's _test.go files, with where. A name is a string constant, or
// a parameter of the calling function (optionally with a constant
// appended) that every call of that function in its folder passes as a
// string constant; anything else is an error, so that every figure can be
// found here.
func reported(t *testing.T, root string) map[string]string {
	t.Helper()
	names := map[string]string{}
	for _, p := range testPackages(t, root) {
		p.eachCall(func(fd *ast.FuncDecl, call *ast.CallExpr) {
			if sel, ok := call.Fun.(*ast.SelectorExpr); !ok || sel.Sel.Name != "ReportMetric" || len(call.Args) != 2 {
				return
			}
			where := p.fset.Position(call.Pos()).String()
			vals, err := names1(p, fd, call.Args[1])
			if err != nil {
				t.Errorf("%s: ReportMetric's name: %v (use a string literal)", where, err)
			}
			for _, v := range vals {
				names[v] = where
			}
		})
	}
	return names
}

// names1 evaluates e, in fd's body, to the string values it takes.
func names1(p *pkgFiles, fd *ast.FuncDecl, e ast.Expr) ([]string, error) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind == token.STRING {
			s, err := strconv.Unquote(e.Value)
			return []string{s}, err
		}
	case *ast.ParenExpr:
		return names1(p, fd, e.X)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			break
		}
		xs, err := names1(p, fd, e.X)
		if err != nil {
			return nil, err
		}
		ys, err := names1(p, fd, e.Y)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, x := range xs {
			for _, y := range ys {
				out = append(out, x+y)
			}
		}
		return out, nil
	case *ast.Ident:
		return paramValues(p, fd, e.Name)
	}
	return nil, fmt.Errorf("%T is neither a string literal nor a parameter", e)
}

// paramValues returns the string constants every call of fd in its folder
// passes as its parameter name.
func paramValues(p *pkgFiles, fd *ast.FuncDecl, name string) ([]string, error) {
	index, i := -1, 0
	for _, field := range fd.Type.Params.List {
		for _, n := range field.Names {
			if n.Name == name {
				index = i
			}
			i++
		}
		if len(field.Names) == 0 {
			i++
		}
	}
	if index < 0 {
		return nil, fmt.Errorf("%s is not a parameter of %s", name, fd.Name.Name)
	}
	var out []string
	var errs []error
	p.eachCall(func(caller *ast.FuncDecl, call *ast.CallExpr) {
		if id, ok := call.Fun.(*ast.Ident); !ok || id.Name != fd.Name.Name || index >= len(call.Args) {
			return
		}
		vals, err := names1(p, caller, call.Args[index])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s's %s: %w", p.fset.Position(call.Pos()), fd.Name.Name, name, err))
		}
		out = append(out, vals...)
	})
	if len(errs) > 0 {
		return nil, errs[0]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s is a parameter of %s, which nothing calls", name, fd.Name.Name)
	}
	return out, nil
}

// TestFiguresListed: every figure a benchmark reports has a direction in
// testbed/figures.txt, and the list names no figure nobody reports.
func TestFiguresListed(t *testing.T) {
	root := repoRoot(t)
	dirs := listed(t, root)
	rep := reported(t, root)
	figures := 0
	for name, where := range rep {
		if !figureName.MatchString(name) {
			continue
		}
		figures++
		if _, ok := dirs[name]; !ok {
			t.Errorf("%s: figure %s is not in testbed/figures.txt: add it with its direction (higher or lower) and what it measures", where, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(dirs)) {
		if _, ok := rep[name]; !ok {
			t.Errorf("testbed/figures.txt lists %s, which no benchmark reports: remove it", name)
		}
	}
	// The scan itself must find the figures: a broken scan would pass
	// the first check vacuously.
	if figures < 10 {
		t.Errorf("found %d figures in the repository's benchmarks, want the dozens make bench prints", figures)
	}
}

// runFigures runs testbed/figures.sh on bench output.
func runFigures(t *testing.T, root, bench string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(root, "testbed", "figures.sh"))
	cmd.Stdin = strings.NewReader(bench)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// TestFiguresScriptKeepsWorst: figures.sh keeps the worst of a repeated
// figure in both directions, and fails on a figure the list lacks.
func TestFiguresScriptKeepsWorst(t *testing.T) {
	root := repoRoot(t)
	dirs := listed(t, root)
	// Names taken from the list by direction, so the test follows it.
	var higher, lower string
	for _, n := range slices.Sorted(maps.Keys(dirs)) {
		if dirs[n] == "higher" && higher == "" {
			higher = n
		}
		if dirs[n] == "lower" && lower == "" {
			lower = n
		}
	}
	if higher == "" || lower == "" {
		t.Fatalf("figures.txt has no higher or no lower figure: %v", dirs)
	}
	bench := strings.Join([]string{
		"goos: linux",
		fmt.Sprintf("BenchmarkA-2   \t       1\t 123456 ns/op\t 40.5 %s\t 2.5 %s\t 7 tone-rel-ms", higher, lower),
		fmt.Sprintf("BenchmarkB-2   \t       3\t 123456 ns/op\t 12.25 %s\t 9.75 %s", higher, lower),
		fmt.Sprintf("BenchmarkC-2   \t       1\t 123456 ns/op\t 30 %s\t 4 %s", higher, lower),
		"PASS",
	}, "\n") + "\n"
	out, errOut, err := runFigures(t, root, bench)
	if err != nil {
		t.Fatalf("figures.sh: %v\n%s", err, errOut)
	}
	for _, want := range []string{higher + "=12.25", lower + "=9.75"} {
		if !slices.Contains(strings.Split(out, "\n"), want) {
			t.Errorf("figures.sh printed\n%s\nwant the line %q (the worst of the three runs)", out, want)
		}
	}
	if strings.Contains(out, "tone-rel-ms") {
		t.Errorf("figures.sh printed a unit that is not a figure:\n%s", out)
	}

	unknown := "benchfigures_unlisted_s"
	if _, ok := dirs[unknown]; ok {
		t.Fatalf("%s is in the list; the test needs a name that is not", unknown)
	}
	bench = fmt.Sprintf("BenchmarkD-2 \t 1\t 5 ns/op\t 3 %s\t 1 %s\n", unknown, higher)
	out, errOut, err = runFigures(t, root, bench)
	if err == nil {
		t.Errorf("figures.sh exited 0 on a figure missing from the list:\n%s", out)
	}
	if !strings.Contains(errOut, unknown) {
		t.Errorf("figures.sh's errors do not name %s:\n%s", unknown, errOut)
	}
	if !strings.Contains(out, higher+"=1") {
		t.Errorf("figures.sh did not print the listed figure beside the unknown one:\n%s", out)
	}
}
