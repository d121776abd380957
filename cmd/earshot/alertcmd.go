package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/config"
	"github.com/earshot/earshot/serve"
)

// runAlert records a moderator's action on an alert. With --server it goes
// through the moderator API (the operator is whoever the token belongs
// to); otherwise it writes the alert.action event to Kafka itself, for
// operators with access to the cluster.
func runAlert(ctx context.Context, e *env) error {
	usage := usageError{errors.New("usage: earshot alert ack|confirm|dismiss ALERT_ID --note TEXT [--operator NAME] [--server URL --token-file FILE]")}
	if len(e.args) < 2 || strings.HasPrefix(e.args[0], "-") || strings.HasPrefix(e.args[1], "-") {
		return usage
	}
	action, id := e.args[0], e.args[1]
	if !slices.Contains([]string{event.ActionAck, event.ActionConfirm, event.ActionDismiss}, action) {
		return usageError{fmt.Errorf("unknown action %q: use ack, confirm or dismiss", action)}
	}
	var note, operator, server, tokenFile string
	sub := &env{args: e.args[2:], stdout: e.stdout, stderr: e.stderr}
	cfg, fs, err := sub.loadConfig("alert "+action, func(fs *flag.FlagSet) {
		fs.StringVar(&note, "note", "", "why (sealed under the speaker's key; may quote what was said)")
		fs.StringVar(&operator, "operator", os.Getenv("EARSHOT_OPERATOR"), "your name as listed in serve.operators (direct mode; env EARSHOT_OPERATOR)")
		fs.StringVar(&server, "server", "", "moderator API base `URL` (e.g. http://127.0.0.1:8470); empty: write to Kafka directly")
		fs.StringVar(&tokenFile, "token-file", os.Getenv("EARSHOT_TOKEN_FILE"), "`file` holding your API token (with --server; env EARSHOT_TOKEN_FILE)")
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q (flags go after the alert ID)", fs.Args())}
	}
	if server != "" {
		return alertViaAPI(ctx, e, server, tokenFile, id, action, note)
	}
	if cfg.Kafka.Embedded {
		return usageError{errors.New("kafka.embedded is set: an in-memory broker has no alerts to act on; set kafka.brokers or use --server")}
	}
	if operator == "" {
		if len(cfg.Serve.Operators) != 1 {
			return usageError{errors.New("--operator is empty: name yourself as listed in serve.operators")}
		}
		operator = cfg.Serve.Operators[0].Name
	}
	if len(cfg.Serve.Operators) > 0 && !slices.ContainsFunc(cfg.Serve.Operators, func(o config.Operator) bool { return o.Name == operator }) {
		return usageError{fmt.Errorf("operator %q is not listed in serve.operators", operator)}
	}
	req := serve.ActionRequest{Action: action, Operator: operator, Note: note}
	if err := req.Validate(); err != nil {
		return usageError{err}
	}

	log := newLogger(cfg, e.stderr)
	rt, err := commandRuntime(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer rt.Close()
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	alert, err := serve.FindAlert(fctx, rt.Cluster, event.TopicAlerts, id)
	if err != nil {
		return err
	}
	env, msg, err := serve.NewAction(ctx, rt.Keys, rt.Self, event.TopicAlertActions, alert, req)
	if err != nil {
		return err
	}
	auditor, err := auditLog(ctx, rt)
	if err != nil {
		return err
	}
	if err := auditor.Record(ctx, event.AuditEntry{Time: time.Now().UTC(), Operator: operator, Action: serve.AuditAlertAction,
		Subject: id, Outcome: serve.OutcomeOK, Detail: action + " (cli)"}); err != nil {
		return fmt.Errorf("audit: %w (the action was not recorded)", err)
	}
	if err := rt.Producer.Produce(ctx, msg); err != nil {
		return fmt.Errorf("publish the action: %w", err)
	}
	fmt.Fprintf(e.stdout, "%s %s by %s: %s\n", action, id, operator, env.EventID)
	return nil
}

// alertViaAPI posts the action to a running `earshot serve`.
func alertViaAPI(ctx context.Context, e *env, server, tokenFile, id, action, note string) error {
	if tokenFile == "" {
		return usageError{errors.New("--token-file is empty: the API needs your operator token")}
	}
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return usageError{fmt.Errorf("--token-file: %w", err)}
	}
	body, _ := json.Marshal(map[string]string{"action": action, "note": note})
	u := strings.TrimRight(server, "/") + "/alerts/" + url.PathEscape(id) + "/actions"
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return usageError{fmt.Errorf("--server: %w", err)}
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("alert %s: %w", action, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var out struct {
		ID, Status, Operator, Error string
	}
	_ = json.Unmarshal(b, &out)
	if resp.StatusCode != http.StatusOK {
		msg := out.Error
		if msg == "" {
			msg = strings.TrimSpace(string(b))
		}
		return fmt.Errorf("alert %s: server answered %s: %s", action, resp.Status, msg)
	}
	fmt.Fprintf(e.stdout, "%s %s by %s: %s (status %s)\n", action, id, out.Operator, out.ID, out.Status)
	return nil
}
