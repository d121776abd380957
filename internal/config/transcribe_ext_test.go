package config

import (
	"testing"
	"time"
)

// TestSecondPasses: the final and settled passes' sections, defaults and
// validation.
func TestSecondPasses(t *testing.T) {
	final := func(c *Config) any { return c.Transcribe.Final }
	settle := func(c *Config) any { return c.Transcribe.Settle }
	tests := []struct {
		name    string
		set     []string
		got     func(*Config) any
		want    any
		invalid string // key named in the error; "" = valid
	}{
		{name: "final defaults", got: final, want: FinalPass{Enabled: true, Batch: 25 * time.Second, Wait: 10 * time.Minute}},
		{name: "final off", set: []string{"transcribe.final.enabled=false", "transcribe.final.batch=0s"}, got: final, want: FinalPass{Wait: 10 * time.Minute}},
		{name: "final batch over the window", set: []string{"transcribe.final.batch=40s"}, invalid: "transcribe.final.batch"},
		{name: "final without batch", set: []string{"transcribe.final.batch=0s"}, invalid: "transcribe.final.batch"},
		{name: "final negative wait", set: []string{"transcribe.final.wait=-1m"}, invalid: "transcribe.final.wait"},
		{name: "settle defaults", got: settle, want: SettlePass{Enabled: true, Batch: 25 * time.Second, Quiet: 15 * time.Second, Queue: 16}},
		{name: "settle off", set: []string{"transcribe.settle.enabled=false", "transcribe.settle.queue=0"}, got: settle, want: SettlePass{Batch: 25 * time.Second, Quiet: 15 * time.Second}},
		{name: "settle batch over the window", set: []string{"transcribe.settle.batch=29s"}, invalid: "transcribe.settle.batch"},
		{name: "settle quiet too short", set: []string{"transcribe.settle.quiet=300ms"}, invalid: "transcribe.settle.quiet"},
		{name: "settle without queue", set: []string{"transcribe.settle.queue=0"}, invalid: "transcribe.settle.queue"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := loadChecked(t, nil, tc.set, tc.invalid)
			if !ok {
				return
			}
			if got := tc.got(&c); got != tc.want {
				t.Errorf("section = %+v, want %+v", got, tc.want)
			}
		})
	}
}
