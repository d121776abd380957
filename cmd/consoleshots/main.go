// Command consoleshots takes the moderator console's screenshots for the
// documentation from a running demo (testbed/demo.sh with
// DEMO_SCREENSHOTS): it signs in with a one-time link in headless
// chromium, photographs a live room's page while the speakers talk, then,
// once the demo says the pipeline has drained (the -done file exists), the
// alert queue and the newest alert's page (the conversation ends with a
// threat).
//
//	consoleshots -signin URL -out docs/console -done FILE [-chrome PATH]
//
// It only talks to the console's own address: every other host name
// fails to resolve in the browser.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/chromedp/chromedp"
)

func main() {
	signin := flag.String("signin", "", "one-time sign-in link (earshot console link)")
	out := flag.String("out", "docs/console", "folder for queue.png, alert.png, room.png")
	done := flag.String("done", "", "file whose appearance says the demo's pipeline has drained")
	chrome := flag.String("chrome", "", "chromium binary (default: chromium on PATH)")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*signin, *out, *done, *chrome, *timeout, log); err != nil {
		log.Error("console screenshots failed", "error", err)
		os.Exit(1)
	}
}

func run(signin, out, done, chrome string, timeout time.Duration, log *slog.Logger) error {
	u, err := url.Parse(signin)
	if err != nil || u.Host == "" || done == "" {
		return errors.New("usage: consoleshots -signin URL -out DIR -done FILE")
	}
	if chrome == "" {
		if chrome, err = exec.LookPath("chromium"); err != nil {
			return fmt.Errorf("chromium not found (testbed/chromium.sh install): %w", err)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	base := u.Scheme + "://" + u.Host
	tmp, err := os.MkdirTemp("", "consoleshots-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(tmp),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE "+u.Hostname()),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(bctx); err != nil {
		return fmt.Errorf("start chromium: %w", err)
	}
	s := shooter{ctx: bctx, deadline: time.Now().Add(timeout), out: out, log: log}

	if err := s.do(chromedp.Navigate(signin)); err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	if err := s.wait("the queue after sign-in", `location.pathname === '/console/'`); err != nil {
		return err
	}
	// A live room, while its speakers talk: the first room listed, once
	// its page has a few transcript lines.
	if err := s.waitReload(base+"/console/rooms", "a live room", `!!document.querySelector('a[href^="/console/rooms/"]')`); err != nil {
		return err
	}
	if err := s.do(chromedp.Click(`a[href^="/console/rooms/"]`)); err != nil {
		return err
	}
	if err := s.wait("the room's live transcript", `document.querySelectorAll('.transcript li .text').length >= 4`); err != nil {
		return err
	}
	if err := s.shoot("room"); err != nil {
		return err
	}
	// After the conversation: the queue with every alert, and the newest
	// alert's page with its audio loaded.
	for {
		if _, err := os.Stat(done); err == nil {
			break
		}
		if time.Now().After(s.deadline) {
			return fmt.Errorf("%s did not appear", done)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := s.waitReload(base+"/console/?status=all", "the queue's alerts", `document.querySelectorAll('#queue tbody tr[data-id]').length > 0`); err != nil {
		return err
	}
	if err := s.shoot("queue"); err != nil {
		return err
	}
	id, err := chromedp.Run(s.ctx, chromedp.Evaluate[string](`document.querySelector('#queue tbody tr[data-id]').dataset.id`))
	if err != nil {
		return err
	}
	if err := s.do(chromedp.Navigate(base + "/console/alerts/" + id)); err != nil {
		return err
	}
	if err := s.wait("the alert's audio", `!!document.getElementById('player') && document.getElementById('player').readyState >= 1`); err != nil {
		return err
	}
	return s.shoot("alert")
}

// shooter drives one tab until its deadline.
type shooter struct {
	ctx      context.Context
	deadline time.Time
	out      string
	log      *slog.Logger
}

func (s shooter) do(steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithDeadline(s.ctx, s.deadline)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// wait polls expr on the page (which may reload) until it is true.
func (s shooter) wait(what, expr string) error {
	for time.Now().Before(s.deadline) {
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { try { return !!(`+expr+`); } catch (e) { return false; } })()`))
		cancel()
		if err == nil && ok {
			return nil
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("waiting for %s: gave up", what)
}

// waitReload opens u every few seconds until expr is true on it.
func (s shooter) waitReload(u, what, expr string) error {
	for time.Now().Before(s.deadline) {
		if err := s.do(chromedp.Navigate(u)); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return nil
		}
		time.Sleep(2 * time.Second)
	}
	return fmt.Errorf("waiting for %s: gave up", what)
}

func (s shooter) shoot(name string) error {
	ctx, cancel := context.WithDeadline(s.ctx, s.deadline)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("screenshot %s: %w", name, err)
	}
	p := filepath.Join(s.out, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		return fmt.Errorf("screenshot %s: %w", name, err)
	}
	s.log.Info("screenshot", "file", p)
	return nil
}
