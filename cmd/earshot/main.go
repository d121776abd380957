// Command earshot records live audio rooms, transcribes them and alerts
// trust-and-safety moderators. One binary, one subcommand per stage:
//
//	earshot run         all stages in one process (embedded defaults)
//	earshot ingest      listener bots and the recorder
//	earshot transcribe  transcription workers
//	earshot policy      policy engine and alerts
//	earshot config      print or check the configuration
//	earshot version     print the build version
//
// Every subcommand takes -config FILE, -set key.path=value (repeatable) and
// reads EARSHOT_* environment variables; see `earshot config keys`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"

	"github.com/earshot/earshot/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	os.Exit(Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Main runs one subcommand and returns the process exit code: 0 on success,
// 1 when the command failed, 2 for a usage or configuration error.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commandTable()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "earshot: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cmd.run(ctx, &env{args: args[1:], stdout: stdout, stderr: stderr})
	var ue usageError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "earshot %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(stderr, "earshot %s: %v\n", args[0], err)
		return 1
	}
}

type command struct {
	summary string
	run     func(ctx context.Context, e *env) error
}

// commandTable lists every subcommand, written out in one place so that a
// reader sees what the binary does without chasing registrations.
func commandTable() map[string]command {
	return map[string]command{
		"run":         {"run every stage in one process", runStages(stageNames()...)},
		"ingest":      {"run the listener bots and the recorder", runStages("ingest")},
		"transcribe":  {"run transcription workers, or re-transcribe a stored session (-replay room/session)", runTranscribe},
		"policy":      {"run the policy engine", runStages("policy")},
		"rebroadcast": {"run the live rebroadcast stage: fingerprint live tracks, alert on a room's audio heard in another", runStages("rebroadcast")},
		"serve":       {"run the moderator API (evidence, alert list, alert actions)", runStages("serve")},
		"compliance":  {"run the compliance stage: event archive and retention sweeper", runStages("compliance")},
		"alert":       {"act on an alert: alert ack|confirm|dismiss ID --note TEXT [--server URL --token-file F]", runAlert},
		"console":     {"console link --operator NAME: print a one-time sign-in link to the moderator console", runConsole},
		"audit":       {"check the audit log's hash chain (audit verify) or print it (audit list)", runAudit},
		"hold":        {"set, lift or list legal holds (hold set|lift|list --room R [--session S] [--speaker P] --reason ...)", runHold},
		"erase":       {"erase a person (--person) or a room (--room): destroy keys, delete objects and versions, print a receipt", runErase},
		"export":      {"write a signed compliance bundle (export --room R [--session S] [--speaker P] --out bundle.tar)", runExport},
		"verify":      {"check a compliance bundle against a trusted public key (verify bundle.tar --key KEY); exit 1 on failure", runVerify},
		"signing-key": {"print the public key that verifies this deployment's export bundles (--pem for PEM)", runSigningKey},
		"keys":        {"keys rewrap: finish a KEK rotation (re-wrap every data key under crypto.kek_file)", runKeys},
		"pseudonym":   {"print the pseudonym of participant identities (for ingest.participants.skip)", runPseudonym},
		"rules":       {"tools for rule authors: rules test SET.jsonl | rules explain \"text\" | rules check policy.yaml", runRules},
		"model":       {"convert a CTranslate2 (faster-whisper) Whisper model folder to a whisper.cpp ggml file: model convert -in DIR -out FILE", runModel},
		"kafka":       {"kafka acls [-apply]: print the stage principals' ACLs, or create the topics and add them as the admin principal", runKafka},
		"config":      {"print the effective configuration (config show), check it (config check) or list keys (config keys)", runConfig},
		"version":     {"print the build version", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: earshot <command> [-config file.yaml] [-set key.path=value ...]")
	fmt.Fprintln(w, "\ncommands:")
	commands := commandTable()
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-11s %s\n", name, commands[name].summary)
	}
}

// usageError marks errors that exit with status 2.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// env is what a subcommand gets: its arguments and outputs.
type env struct {
	args   []string
	stdout io.Writer
	stderr io.Writer
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// loadConfig parses the common flags plus any extra ones the command adds,
// loads and validates the configuration.
func (e *env) loadConfig(name string, extra func(*flag.FlagSet)) (config.Config, *flag.FlagSet, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	path := fs.String("config", os.Getenv("EARSHOT_CONFIG"), "YAML configuration `file` (env EARSHOT_CONFIG)")
	var sets stringList
	fs.Var(&sets, "set", "override one setting, `key.path=value` (repeatable; see earshot config keys)")
	dataDir := fs.String("data-dir", "", "folder for local state (same as -set data_dir=...)")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(e.args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config.Config{}, fs, err
		}
		return config.Config{}, fs, usageError{err}
	}
	if *dataDir != "" {
		sets = append(sets, "data_dir="+*dataDir)
	}
	cfg, err := config.Load(*path, os.Environ(), sets)
	if err != nil {
		return cfg, fs, usageError{err}
	}
	cfg.ResolvePaths()
	if err := cfg.Validate(); err != nil {
		return cfg, fs, usageError{err}
	}
	return cfg, fs, nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Version returns the build version: the -ldflags value, else the VCS
// revision Go recorded, else "dev".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
	}
	return "dev"
}

func runVersion(_ context.Context, e *env) error {
	fmt.Fprintln(e.stdout, "earshot", Version())
	return nil
}

func runConfig(_ context.Context, e *env) error {
	sub := "show"
	if len(e.args) > 0 && !strings.HasPrefix(e.args[0], "-") {
		sub, e.args = e.args[0], e.args[1:]
	}
	if sub == "keys" {
		for _, k := range config.Keys() {
			fmt.Fprintf(e.stdout, "%-36s %s\n", k, config.EnvName(k))
		}
		return nil
	}
	cfg, _, err := e.loadConfig("config "+sub, nil)
	if err != nil {
		return err
	}
	switch sub {
	case "check":
		fmt.Fprintln(e.stdout, "configuration is valid")
		return nil
	case "show":
		return printConfig(e.stdout, cfg)
	default:
		return usageError{fmt.Errorf("unknown config subcommand %q (show, check, keys)", sub)}
	}
}
