package config

import (
	"strings"
	"testing"
	"time"
)

func TestFinalPass(t *testing.T) {
	tests := []struct {
		name    string
		set     []string
		want    FinalPass
		invalid string // key named in the error; "" = valid
	}{
		{name: "defaults", want: FinalPass{Enabled: true, Batch: 25 * time.Second, Wait: 10 * time.Minute}},
		{name: "off", set: []string{"transcribe.final.enabled=false", "transcribe.final.batch=0s"}, want: FinalPass{Wait: 10 * time.Minute}},
		{name: "batch over the window", set: []string{"transcribe.final.batch=40s"}, invalid: "transcribe.final.batch"},
		{name: "no batch", set: []string{"transcribe.final.batch=0s"}, invalid: "transcribe.final.batch"},
		{name: "negative wait", set: []string{"transcribe.final.wait=-1m"}, invalid: "transcribe.final.wait"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load("", nil, append([]string{"data_dir=d"}, tc.set...))
			if err != nil {
				t.Fatal(err)
			}
			c.ResolvePaths()
			err = c.Validate()
			if tc.invalid != "" {
				if err == nil || !strings.Contains(err.Error(), tc.invalid) {
					t.Fatalf("Validate: %v; want an error naming %s", err, tc.invalid)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Transcribe.Final != tc.want {
				t.Errorf("final = %+v, want %+v", c.Transcribe.Final, tc.want)
			}
		})
	}
}
