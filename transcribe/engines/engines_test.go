package engines

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earshot/earshot/transcribe/httpengine"
)

func TestNew(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("sk-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		c       Config
		wantErr error  // errors.Is target, when an error is wanted
		errText string // a part of the message, when an error is wanted
		remote  bool   // the warning about audio leaving the machine
	}{
		{name: "http on loopback", c: Config{URL: "http://127.0.0.1:18000", Model: "tiny.en"}},
		{name: "http named", c: Config{Kind: HTTP, URL: "http://[::1]:18000", APIKeyFile: keyFile}},
		{name: "http remote", c: Config{URL: "https://api.example.com"}, remote: true},
		{name: "http without url", c: Config{Kind: HTTP}, wantErr: ErrNotConfigured, errText: "transcribe.url is empty"},
		{name: "unknown kind", c: Config{Kind: "vosk", URL: "http://127.0.0.1:1"}, wantErr: ErrNotConfigured, errText: `"vosk"`},
		{name: "missing key file", c: Config{URL: "http://127.0.0.1:1", APIKeyFile: filepath.Join(t.TempDir(), "none")}, errText: "transcribe.api_key_file"},
		{name: "whisper without model", c: Config{Kind: Whisper}, errText: "whisper engine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			tc.c.Logger = slog.New(slog.NewTextHandler(&log, nil))
			eng, release, err := New(tc.c)
			if tc.errText != "" {
				if err == nil {
					release()
					t.Fatalf("built %T, want an error saying %q", eng, tc.errText)
				}
				if !strings.Contains(err.Error(), tc.errText) || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %q: want it to say %q (and wrap %v)", err, tc.errText, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			if _, ok := eng.(*httpengine.Engine); !ok {
				t.Fatalf("built %T, want the HTTP engine", eng)
			}
			if warned := strings.Contains(log.String(), "remote server"); warned != tc.remote {
				t.Errorf("remote-server warning logged %v, want %v (log: %s)", warned, tc.remote, log.String())
			}
		})
	}
}
