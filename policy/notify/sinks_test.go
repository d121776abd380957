package notify

import (
	"encoding/base64"
	"io"
	"strings"
	"testing"
)

func TestNewSink(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	tests := []struct {
		name    string
		cfg     SinkConfig
		want    string // the notifier's type, or the error's text
		wantErr bool
	}{
		{"stdout", SinkConfig{Name: "out", Type: "stdout", Stdout: io.Discard}, "*notify.Stdout", false},
		{"signed webhook", SinkConfig{Name: "tns", Type: "webhook", URL: "http://127.0.0.1:9/hook", Secret: secret}, "*notify.Webhook", false},
		{"slack", SinkConfig{Name: "mods", Type: "slack", URL: "http://127.0.0.1:9/slack"}, "*notify.Webhook", false},
		{"unknown type", SinkConfig{Name: "x", Type: "pager"}, `type "pager"`, true},
		{"bad secret", SinkConfig{Name: "tns", Type: "webhook", URL: "http://127.0.0.1:9/hook", Secret: "not-a-secret"}, "secret", true},
		{"bad url", SinkConfig{Name: "tns", Type: "webhook", URL: "ftp://x"}, "not an http(s) URL", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := NewSink(tt.cfg)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err %v, want one mentioning %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := typeName(n); got != tt.want {
				t.Fatalf("notifier %s, want %s", got, tt.want)
			}
		})
	}
	n, _ := NewSink(SinkConfig{Name: "mods", Type: "slack", URL: "http://127.0.0.1:9/slack"})
	if f := n.(*Webhook).cfg.Format; f != FormatSlack {
		t.Errorf("slack sink posts format %q", f)
	}
}

func typeName(n Notifier) string {
	switch n.(type) {
	case *Stdout:
		return "*notify.Stdout"
	case *Webhook:
		return "*notify.Webhook"
	default:
		return "other"
	}
}
