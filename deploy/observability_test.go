package deploy

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/earshot/earshot/internal/testbed"
)

// runtimeMetrics are the Go runtime and process collectors every Earshot
// process registers (cmd/earshot newRegistry), plus Prometheus's own up.
var runtimeMetrics = []string{"up", "go_goroutines", "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"}

// exportedMetrics reads the metric names the module's code defines: the
// Name of every prometheus.*Opts literal with its Namespace and Subsystem
// (also when Name is a parameter of a small constructor such as
// c("chunks_total", ...): its calls give the names), and every
// prometheus.NewDesc with a literal name. Histograms add their series.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	root := testbed.RepoRoot()
	names := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == "out" || n == "testdata" || strings.HasPrefix(n, ".") && p != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		for _, n := range metricNames(f) {
			names[n] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 20 {
		t.Fatalf("found only %d metric names in the code: the extraction is broken", len(names))
	}
	return names
}

func metricNames(f *ast.File) []string {
	str := func(e ast.Expr) (string, bool) {
		if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.STRING {
			s, err := strconv.Unquote(b.Value)
			return s, err == nil
		}
		return "", false
	}
	var out []string
	// Constructors whose parameter becomes an Opts Name: func name ->
	// (parameter index, prefix, histogram).
	type ctor struct {
		param     int
		prefix    string
		histogram bool
	}
	ctors := map[string]ctor{}
	add := func(name string, histogram bool) {
		out = append(out, name)
		if histogram {
			out = append(out, name+"_bucket", name+"_sum", name+"_count")
		}
	}
	var params []*ast.Ident // of the innermost function literal being visited
	var funcName string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if len(n.Lhs) == 1 && len(n.Rhs) == 1 {
				if fl, ok := n.Rhs[0].(*ast.FuncLit); ok {
					if id, ok := n.Lhs[0].(*ast.Ident); ok {
						funcName, params = id.Name, nil
						for _, fld := range fl.Type.Params.List {
							params = append(params, fld.Names...)
						}
					}
				}
			}
		case *ast.CompositeLit:
			sel, ok := n.Type.(*ast.SelectorExpr)
			if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
				return true
			}
			var ns, sub, name string
			var nameIdent *ast.Ident
			for _, el := range n.Elts {
				kv, ok := el.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				key, _ := kv.Key.(*ast.Ident)
				if key == nil {
					continue
				}
				v, isLit := str(kv.Value)
				switch key.Name {
				case "Namespace":
					ns = v
				case "Subsystem":
					sub = v
				case "Name":
					if isLit {
						name = v
					} else if id, ok := kv.Value.(*ast.Ident); ok {
						nameIdent = id
					}
				}
			}
			prefix := ""
			for _, p := range []string{ns, sub} {
				if p != "" {
					prefix += p + "_"
				}
			}
			hist := strings.HasPrefix(sel.Sel.Name, "Histogram") || strings.HasPrefix(sel.Sel.Name, "Summary")
			if name != "" {
				add(prefix+name, hist)
			} else if nameIdent != nil {
				for i, p := range params {
					if p.Name == nameIdent.Name {
						ctors[funcName] = ctor{i, prefix, hist}
					}
				}
			}
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "NewDesc" && len(n.Args) > 0 {
				if s, ok := str(n.Args[0]); ok {
					add(s, false)
				}
			}
		}
		return true
	})
	// Second pass: the constructors' calls.
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		id, ok := call.Fun.(*ast.Ident)
		if !ok {
			return true
		}
		c, ok := ctors[id.Name]
		if !ok || c.param >= len(call.Args) {
			return true
		}
		if s, ok := str(call.Args[c.param]); ok {
			add(c.prefix+s, c.histogram)
		}
		return true
	})
	return out
}

var metricRef = regexp.MustCompile(`\b(earshot_[a-z0-9_]+|up|go_[a-z0-9_]+|process_[a-z0-9_]+)\b`)

// checkExpr fails for a metric the code does not export and for
// unbalanced brackets (a rule file Prometheus would refuse).
func checkExpr(t *testing.T, where, expr string, known map[string]bool) []string {
	t.Helper()
	depth := map[rune]int{}
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	for _, r := range expr {
		switch r {
		case '(', '[', '{':
			depth[r]++
		case ')', ']', '}':
			depth[pairs[r]]--
			if depth[pairs[r]] < 0 {
				t.Errorf("%s: unbalanced %q in %s", where, r, expr)
			}
		}
	}
	for r, d := range depth {
		if d != 0 {
			t.Errorf("%s: unclosed %q in %s", where, r, expr)
		}
	}
	var used []string
	for _, m := range metricRef.FindAllString(expr, -1) {
		if !known[m] && !slices.Contains(runtimeMetrics, m) {
			t.Errorf("%s uses %s, which no Earshot process exports", where, m)
		}
		used = append(used, m)
	}
	return used
}

// TestDashboardUsesExportedMetrics: every query of the Grafana dashboard
// names metrics the stages export, and every metric of the rebroadcast
// stage is shown.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	known := exportedMetrics(t)
	b, err := os.ReadFile("grafana/earshot.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	queries := 0
	shown := map[string]bool{}
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			used := checkExpr(t, "panel "+strconv.Quote(p.Title), q.Expr, known)
			if len(used) == 0 {
				t.Errorf("panel %q: query %q uses no metric", p.Title, q.Expr)
			}
			for _, m := range used {
				shown[m] = true
			}
		}
	}
	// The rebroadcast stage's metrics are all on the dashboard.
	for m := range known {
		if strings.HasPrefix(m, "earshot_rebroadcast_") && !shown[m] {
			t.Errorf("the dashboard does not show %s", m)
		}
	}
	if d.UID == "" || queries < 10 {
		t.Fatalf("dashboard uid %q with %d queries", d.UID, queries)
	}
}

// TestAlertRules: the rule file parses as Prometheus rule groups, every
// rule has what an on-call engineer needs (severity, summary, a valid
// `for`), uses exported metrics, and the lag, gap, spool and dead-letter
// metrics (the rebroadcast stage's included) each carry a rule.
func TestAlertRules(t *testing.T) {
	known := exportedMetrics(t)
	b, err := os.ReadFile("prometheus/earshot-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("rule file: %v", err)
	}
	covered := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			where := "rule " + r.Alert
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("group %s: a rule without alert or expr: %+v", g.Name, r)
			}
			if sev := r.Labels["severity"]; sev != "page" && sev != "ticket" {
				t.Errorf("%s: severity %q, want page or ticket", where, sev)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary annotation", where)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", where, r.For, err)
				}
			}
			for _, m := range checkExpr(t, where, r.Expr, known) {
				covered[m] = true
			}
		}
	}
	for _, m := range []string{
		"earshot_transcribe_consumer_lag_records", "earshot_ingest_gap_samples_total",
		"earshot_spool_pending_entries", "earshot_transcribe_dead_letters_total", "earshot_notify_dead_letters_total",
		"earshot_rebroadcast_dead_letters_total", "earshot_rebroadcast_consumer_lag_records", "earshot_rebroadcast_fingerprints_lag_records",
	} {
		if !covered[m] {
			t.Errorf("no alerting rule uses %s", m)
		}
	}
}
