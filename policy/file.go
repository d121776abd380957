package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/earshot/earshot/policy/normalize"
)

// The policy file (YAML). Unknown keys are errors, so a misspelt key never
// silently turns a rule off. See default.yaml for a documented example.
type fileDoc struct {
	Version      string      `yaml:"version"`
	PhoneRegions []string    `yaml:"phone_regions"`
	Scoring      fileScoring `yaml:"scoring"`
	Rules        []fileRule  `yaml:"rules"`
}

type fileScoring struct {
	MinScore        *float64 `yaml:"min_score"`
	MaxNoSpeechProb *float64 `yaml:"max_no_speech_prob"`
}

type fileRule struct {
	ID          string       `yaml:"id"`
	Description string       `yaml:"description"`
	Category    string       `yaml:"category"`
	Severity    string       `yaml:"severity"`
	Strength    *float64     `yaml:"strength"`
	MinScore    *float64     `yaml:"min_score"`
	Signal      bool         `yaml:"signal"`
	Detector    string       `yaml:"detector"`
	Lexicon     *fileLexicon `yaml:"lexicon"`
	Regex       *fileRegex   `yaml:"regex"`
	Context     *fileContext `yaml:"context"`
	Near        *fileNear    `yaml:"near"`
}

type fileLexicon struct {
	Terms []string `yaml:"terms"`
	Files []string `yaml:"files"`
}

type fileRegex struct {
	Patterns []string `yaml:"patterns"`
	View     string   `yaml:"view"`
}

type fileContext struct {
	Within        int      `yaml:"within"`
	Suppress      []string `yaml:"suppress"`
	SuppressFiles []string `yaml:"suppress_files"`
}

type fileNear struct {
	Categories []string `yaml:"categories"`
	Within     int      `yaml:"within"`
}

// Categories are the categories a rule may report, with what they mean.
// A deployment's own categories start with "custom.".
var Categories = map[string]string{
	"pii.phone":         "a phone number",
	"pii.email":         "an e-mail address",
	"pii.card":          "a payment card number",
	"pii.iban":          "a bank account number (IBAN)",
	"pii.address":       "a street address (usually a signal for leak.doxxing)",
	"leak.confidential": "confidential or NDA material announced as such",
	"leak.off_record":   "a request to keep something off the record",
	"leak.recording":    "someone announces recording or rebroadcasting the room",
	"leak.doxxing":      "a third party's contact data or address read out",
	"abuse.threat":      "a threat of violence",
	"abuse.harassment":  "insults and harassment aimed at someone",
	"abuse.hate":        "hate against a protected group",
}

// Detector names for the detector: key.
var detectorNames = []string{"phone", "email", "card", "iban"}

// Problem is one thing wrong with a policy file.
type Problem struct {
	// Line in the file, when known.
	Line int
	// Where names the place: "rules[3] (abuse.threat.en).regex.patterns[1]".
	Where string
	// What is wrong, and Fix how to put it right.
	What, Fix string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Where != "" {
		b.WriteString(p.Where + ": ")
	}
	b.WriteString(p.What)
	if p.Fix != "" {
		b.WriteString(" — fix: " + p.Fix)
	}
	return b.String()
}

// LoadError lists every problem found in a policy file.
type LoadError struct {
	File     string
	Problems []Problem
}

func (e *LoadError) Error() string {
	var b strings.Builder
	n := len(e.Problems)
	fmt.Fprintf(&b, "policy %s: %d problem", e.File, n)
	if n != 1 {
		b.WriteString("s")
	}
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

// Source tells Parse where lexicon files named in the policy come from:
// "builtin:<path>" names a file of the lexicons embedded in Earshot
// (policy/lexicons), any other name a file in Dir (the policy file's own
// directory when loading with Load).
type Source struct {
	// Name is used in messages (the file's path).
	Name string
	// Dir holds the policy's own lexicon files; nil allows builtin ones
	// only.
	Dir fs.FS
}

// Load reads, validates and compiles the policy file at path. Lexicon files
// named in it are read relative to its directory. Any problem gives a
// *LoadError listing all of them.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &LoadError{File: path, Problems: []Problem{{What: err.Error(), Fix: "check the path in the configuration (policy.file)"}}}
	}
	return Parse(data, Source{Name: path, Dir: os.DirFS(filepath.Dir(path))})
}

// Parse validates and compiles a policy from YAML.
func Parse(data []byte, src Source) (*Policy, error) {
	p, _, err := parse(data, src)
	return p, err
}

// parse also returns the lexicon files it read, for the loader's change
// detection.
func parse(data []byte, src Source) (*Policy, []string, error) {
	if src.Name == "" {
		src.Name = "(policy)"
	}
	c := &checker{src: src, files: map[string][]byte{}}
	var doc fileDoc
	c.decode(data, &doc)
	if c.fatal {
		return nil, nil, c.err()
	}
	c.lines = ruleLines(data)
	p := c.compile(&doc)
	files := make([]string, 0, len(c.files))
	for f := range c.files {
		if !strings.HasPrefix(f, "builtin:") {
			files = append(files, f)
		}
	}
	sort.Strings(files)
	if len(c.problems) > 0 {
		return nil, files, c.err()
	}
	return p, files, nil
}

type checker struct {
	src      Source
	problems []Problem
	fatal    bool
	lines    []int
	files    map[string][]byte
}

func (c *checker) add(line int, where, what, fix string) {
	c.problems = append(c.problems, Problem{Line: line, Where: where, What: what, Fix: fix})
}

func (c *checker) err() error {
	return &LoadError{File: c.src.Name, Problems: c.problems}
}

var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type policy\.(\w+)$`)

var sectionKeys = map[string]string{
	"fileDoc":     "version, phone_regions, scoring, rules",
	"fileScoring": "min_score, max_no_speech_prob",
	"fileRule":    "id, description, category, severity, strength, min_score, signal, detector, lexicon, regex, context, near",
	"fileLexicon": "terms, files",
	"fileRegex":   "patterns, view",
	"fileContext": "within, suppress, suppress_files",
	"fileNear":    "categories, within",
}

var sectionNames = map[string]string{
	"fileDoc": "top level", "fileScoring": "scoring", "fileRule": "a rule", "fileLexicon": "lexicon",
	"fileRegex": "regex", "fileContext": "context", "fileNear": "near",
}

// decode decodes strictly and turns yaml.v3's errors into problems. Type
// errors leave the rest of the document decoded, so validation still runs
// and reports everything at once.
func (c *checker) decode(data []byte, doc *fileDoc) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(doc)
	if err == nil {
		var extra yaml.Node
		if dec.Decode(&extra) == nil {
			c.add(extra.Line, "", "the file holds more than one YAML document", "keep one policy per file (remove the second '---')")
		}
		return
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := err.Error()
		if errors.Is(err, io.EOF) || strings.TrimSpace(string(data)) == "" {
			msg = "the file is empty"
		}
		c.add(0, "", msg, "fix the YAML syntax at the line named")
		c.fatal = true
		return
	}
	for _, e := range te.Errors {
		if m := unknownField.FindStringSubmatch(e); m != nil {
			var line int
			fmt.Sscan(m[1], &line)
			c.add(line, sectionNames[m[3]], fmt.Sprintf("unknown key %q", m[2]), "remove it or correct the spelling; known keys here: "+sectionKeys[m[3]])
			continue
		}
		c.add(0, "", strings.TrimPrefix(e, "yaml: "), "give the value the type the key expects")
	}
}

// ruleLines finds the line of each entry of rules, for messages.
func ruleLines(data []byte) []int {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 {
		return nil
	}
	m := root.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "rules" && m.Content[i+1].Kind == yaml.SequenceNode {
			var lines []int
			for _, n := range m.Content[i+1].Content {
				lines = append(lines, n.Line)
			}
			return lines
		}
	}
	return nil
}

func (c *checker) ruleLine(i int) int {
	if i < len(c.lines) {
		return c.lines[i]
	}
	return 0
}

// readList reads a lexicon file: one term per line, "#" starts a comment.
func (c *checker) readList(line int, where, name string) []string {
	var data []byte
	var err error
	if rest, ok := strings.CutPrefix(name, "builtin:"); ok {
		data, err = fs.ReadFile(builtinLexicons, "lexicons/"+rest)
		if err != nil {
			names, _ := fs.Glob(builtinLexicons, "lexicons/*/*.txt")
			for i := range names {
				names[i] = "builtin:" + strings.TrimPrefix(names[i], "lexicons/")
			}
			c.add(line, where, fmt.Sprintf("no builtin lexicon %q", name), "use one of: "+strings.Join(names, ", "))
			return nil
		}
	} else {
		if c.src.Dir == nil {
			c.add(line, where, fmt.Sprintf("lexicon file %q cannot be read: this policy has no directory", name), "load the policy from a file, or use builtin: lexicons or inline terms")
			return nil
		}
		clean := filepath.ToSlash(filepath.Clean(name))
		if !fs.ValidPath(clean) {
			c.add(line, where, fmt.Sprintf("lexicon file %q is outside the policy's directory", name), "put the file beside the policy file (or below it) and give a relative path")
			return nil
		}
		data, err = fs.ReadFile(c.src.Dir, clean)
		if err != nil {
			c.add(line, where, fmt.Sprintf("lexicon file %q: %v", name, err), "create the file or correct its path (relative to the policy file)")
			return nil
		}
	}
	c.files[name] = data
	var terms []string
	for _, l := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		if l = strings.TrimSpace(l); l != "" {
			terms = append(terms, l)
		}
	}
	return terms
}

// checkTerms reports terms that fold to nothing.
func (c *checker) checkTerms(line int, where string, terms []string) []string {
	out := terms[:0:0]
	for i, t := range terms {
		if normalize.Fold(t) == "" {
			c.add(line, fmt.Sprintf("%s[%d]", where, i), fmt.Sprintf("term %q has no letters or digits, so it can never match", t), "remove it")
			continue
		}
		out = append(out, t)
	}
	return out
}

func knownCategory(cat string) bool {
	_, ok := Categories[cat]
	return ok || strings.HasPrefix(cat, "custom.") && len(cat) > len("custom.")
}

func categoryList() string {
	names := make([]string, 0, len(Categories))
	for k := range Categories {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ") + ", or custom.<name>"
}

var ruleID = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
