package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/earshot/earshot/policy"
)

func runRules(ctx context.Context, e *env) error {
	if len(e.args) == 0 {
		return usageError{errors.New("usage: earshot rules test|explain|check ...")}
	}
	sub, args := e.args[0], e.args[1:]
	switch sub {
	case "test":
		return rulesTest(e, args)
	case "explain":
		return rulesExplain(e, args)
	case "check":
		return rulesCheck(e, args)
	}
	return usageError{fmt.Errorf("unknown subcommand %q (test, explain, check)", sub)}
}

// loadRules loads the policy file at path, or the built-in default policy.
func loadRules(path string) (*policy.Policy, error) {
	if path == "" {
		return policy.Default()
	}
	return policy.Load(path)
}

// rulesFlags parses a subcommand's flags, which may come before or after
// its positional arguments.
func rulesFlags(e *env, name string, args []string, def func(*flag.FlagSet)) ([]string, error) {
	fs := flag.NewFlagSet("rules "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	def(fs)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func rulesCheck(e *env, args []string) error {
	pos, err := rulesFlags(e, "check", args, func(*flag.FlagSet) {})
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{errors.New("usage: earshot rules check policy.yaml")}
	}
	p, err := policy.Load(pos[0])
	var le *policy.LoadError
	if errors.As(err, &le) {
		for _, pr := range le.Problems {
			fmt.Fprintf(e.stdout, "%s:%s\n", pos[0], strings.TrimPrefix(" "+pr.String(), " "))
		}
		return fmt.Errorf("%s: %d problem(s)", pos[0], len(le.Problems))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: ok, version %s, %d rules\n", pos[0], p.Version(), len(p.Rules()))
	return nil
}

func rulesExplain(e *env, args []string) error {
	var file, lang string
	var asJSON bool
	pos, err := rulesFlags(e, "explain", args, func(fs *flag.FlagSet) {
		fs.StringVar(&file, "policy", "", "policy `file` (default: the built-in policy)")
		fs.StringVar(&lang, "lang", "", "language of the text (ISO 639-1; rules apply whatever it is)")
		fs.BoolVar(&asJSON, "json", false, "print the explanation as JSON")
	})
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError{errors.New(`usage: earshot rules explain [-policy file] "text"`)}
	}
	p, err := loadRules(file)
	if err != nil {
		return err
	}
	x := p.Explain(strings.Join(pos, " "), lang)
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(x)
	}
	w := e.stdout
	fmt.Fprintf(w, "policy     %s\nnormalised %s\n", p.Version(), x.Normalised)
	if len(x.Numbers) > 0 {
		fmt.Fprintf(w, "numbers    %s\n", strings.Join(x.Numbers, " "))
	}
	if len(x.Candidates) == 0 {
		fmt.Fprintln(w, "no rule matches")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range x.Candidates {
		score := ""
		if c.Status == policy.StatusFired || c.Status == policy.StatusMerged || c.Status == policy.StatusLowScore {
			score = fmt.Sprintf("%.2f", c.Score)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%q\t%s\t%s\n", strings.ToUpper(c.Status), c.RuleID, c.Category, c.Text, score, c.Why)
	}
	_ = tw.Flush()
	for _, m := range x.NearMisses {
		fmt.Fprintf(w, "near miss  %s\n", m)
	}
	return nil
}

func rulesTest(e *env, args []string) error {
	var file, baseline, split, out string
	var showHeldout bool
	pos, err := rulesFlags(e, "test", args, func(fs *flag.FlagSet) {
		fs.StringVar(&file, "policy", "", "policy `file` to test (default: the built-in policy)")
		fs.StringVar(&baseline, "baseline", "", "compare with this policy `file` (.yaml) or a report written with -report (.json); a category that scores worse fails")
		fs.StringVar(&split, "split", "", "score only lines of this split (tune, heldout); default all")
		fs.StringVar(&out, "report", "", "write the report as JSON to this `file` (a later run's -baseline)")
		fs.BoolVar(&showHeldout, "show-heldout", false, "list misses and false alarms of held-out lines too (they are counted either way)")
	})
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{errors.New("usage: earshot rules test SET.jsonl [-policy policy.yaml] [-baseline FILE] [-split tune|heldout] [-report out.json]")}
	}
	set, err := readLabelledFile(pos[0])
	if err != nil {
		return err
	}
	p, err := loadRules(file)
	if err != nil {
		return err
	}
	var splits []string
	if split != "" {
		splits = []string{split}
	}
	rep := p.Score(set, splits...)
	printReport(e.stdout, rep, showHeldout)
	if out != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("rules test: write report: %w", err)
		}
	}
	if baseline == "" {
		return nil
	}
	base, err := baselineReport(baseline, set, splits)
	if err != nil {
		return err
	}
	if base.Lines != rep.Lines {
		return fmt.Errorf("rules test: the baseline scored %d lines, this run %d: compare on the same set and split", base.Lines, rep.Lines)
	}
	regs := rep.Regressions(base)
	if len(regs) == 0 {
		fmt.Fprintf(e.stdout, "\nno category regresses against the baseline (%s)\n", base.PolicyVersion)
		return nil
	}
	fmt.Fprintf(e.stdout, "\nregressions against the baseline (%s):\n", base.PolicyVersion)
	for _, g := range regs {
		fmt.Fprintf(e.stdout, "  %s\n", g)
	}
	return fmt.Errorf("%d categor%s regress against the baseline", len(regs), map[bool]string{true: "y", false: "ies"}[len(regs) == 1])
}

func readLabelledFile(path string) ([]policy.LabelledLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rules test: %w", err)
	}
	defer f.Close()
	set, err := policy.ReadLabelled(f)
	if err != nil {
		return nil, fmt.Errorf("rules test: %s: %w", path, err)
	}
	return set, nil
}

// baselineReport scores the set with a baseline policy file, or reads a
// report saved by an earlier run.
func baselineReport(path string, set []policy.LabelledLine, splits []string) (policy.Report, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		p, err := policy.Load(path)
		if err != nil {
			return policy.Report{}, err
		}
		return p.Score(set, splits...), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return policy.Report{}, fmt.Errorf("rules test: baseline: %w", err)
	}
	var r policy.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return policy.Report{}, fmt.Errorf("rules test: baseline %s is neither a policy (.yaml) nor a report: %w", path, err)
	}
	return r, nil
}

func printReport(w io.Writer, r policy.Report, showHeldout bool) {
	fmt.Fprintf(w, "policy %s, %d lines\n\n", r.PolicyVersion, r.Lines)
	table := func(title string, m map[string]policy.Counts) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "%s\tprecision\trecall\ttp\tfp\tfn\t\n", title)
		for _, k := range keys {
			c := m[k]
			fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%d\t%d\t%d\t\n", k, c.Precision(), c.Recall(), c.TP, c.FP, c.FN)
		}
		_ = tw.Flush()
		fmt.Fprintln(w)
	}
	table("category", r.ByCategory)
	table("rule", r.ByRule)
	list := func(title string, os []policy.Outcome) {
		hidden := 0
		fmt.Fprintf(w, "%s:\n", title)
		for _, o := range slices.Clone(os) {
			if o.Split == "heldout" && !showHeldout {
				hidden++
				continue
			}
			fmt.Fprintf(w, "  %-18s %-10s %q\n", o.Category, o.ID, o.Text)
			for _, why := range o.Rules {
				fmt.Fprintf(w, "      %s\n", why)
			}
		}
		if hidden > 0 {
			fmt.Fprintf(w, "  (%d on held-out lines, not listed: -show-heldout lists them)\n", hidden)
		}
	}
	list("misses", r.Misses)
	list("false alarms", r.FalseAlarms)
}
