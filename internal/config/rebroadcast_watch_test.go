package config

import (
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestRebroadcastWatch: the watch list decodes from YAML, every problem
// is reported with its entry's key, and neither a problem nor the shown
// configuration carries a URL's credentials.
func TestRebroadcastWatch(t *testing.T) {
	tests := []struct {
		name  string
		watch []WatchStream
		want  []string
	}{
		{"none", nil, nil},
		{"good", []WatchStream{{Name: "radio-1", URL: "https://u:pw@h.example:8000/live.ogg"}, {Name: "hls.b", URL: "http://h/x.m3u8?tok=pw"}}, nil},
		{"bad", []WatchStream{
			{Name: "Radio One", URL: "https://h/x"},
			{Name: "a", URL: "rtmp://u:topsecret@h/live"},
			{Name: "a", URL: "http:///nohost"},
			{Name: "", URL: "file:///etc/passwd"},
		}, []string{"rebroadcast.watch[0].name", "rebroadcast.watch[1].url", "rebroadcast.watch[2].name", "rebroadcast.watch[2].url", "rebroadcast.watch[3].name", "rebroadcast.watch[3].url"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := defaultRebroadcast()
			x.Watch = tt.watch
			var got []string
			x.validate(func(key, format string, args ...any) { got = append(got, key+": "+fmt.Sprintf(format, args...)) })
			all := strings.Join(got, "\n")
			if len(tt.want) == 0 && len(got) > 0 {
				t.Fatalf("problems in a valid section: %v", all)
			}
			for _, w := range tt.want {
				if !strings.Contains(all, w+":") {
					t.Errorf("no problem about %s in:\n%s", w, all)
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("%d problems, want %d:\n%s", len(got), len(tt.want), all)
			}
			if strings.Contains(all, "topsecret") {
				t.Errorf("a URL's password is in a message: %s", all)
			}
		})
	}

	cfg := Default()
	if err := Decode(strings.NewReader("rebroadcast:\n  watch:\n    - {name: radio, url: \"https://u:topsecret@h.example/live.ogg\"}\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Rebroadcast.Watch) != 1 || cfg.Rebroadcast.Watch[0].Name != "radio" || !strings.Contains(cfg.Rebroadcast.Watch[0].URL.Reveal(), "topsecret") {
		t.Fatalf("decoded %+v", cfg.Rebroadcast.Watch)
	}
	out, err := yaml.Marshal(Shown(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "topsecret") || !strings.Contains(string(out), "name: radio") {
		t.Errorf("shown configuration:\n%s", out)
	}
}
