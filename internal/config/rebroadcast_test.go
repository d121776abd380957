package config

import (
	"strings"
	"testing"
	"time"
)

// TestRebroadcastAllowValidation: each bad allow-list entry is reported
// under its own key with a fix; good entries pass.
func TestRebroadcastAllowValidation(t *testing.T) {
	tests := []struct {
		name, allow string
		want        []string // substrings of the error; none: valid
	}{
		{"a pair", `[{rooms: [1234, 5678], reason: "host consented to a simulcast"}]`, nil},
		{"a pair until a time", `[{rooms: [a, b], until: "2027-01-31T18:00:00Z", reason: r}]`, nil},
		{"a pair until a date", `[{rooms: [a, b], until: 2027-01-31, reason: r}, {rooms: [a, c], reason: r}]`, nil},
		{"one room", `[{rooms: [a], reason: r}]`, []string{"rebroadcast.allow[0].rooms", "exactly two"}},
		{"three rooms", `[{rooms: [a, b, c], reason: r}]`, []string{"rebroadcast.allow[0].rooms", "lists 3 rooms"}},
		{"same room twice", `[{rooms: [a, " a"], reason: r}]`, []string{"rebroadcast.allow[0].rooms", "twice"}},
		{"empty room", `[{rooms: [a, ""], reason: r}]`, []string{"rebroadcast.allow[0].rooms", "empty room"}},
		{"wildcard", `[{rooms: [a, "*"], reason: r}]`, []string{"rebroadcast.allow[0].rooms", "wildcard"}},
		{"a pair twice, either order", `[{rooms: [a, b], reason: r}, {rooms: [b, a], reason: r}]`, []string{"rebroadcast.allow[1].rooms", "allow[0]"}},
		{"bad until", `[{rooms: [a, b], until: next week, reason: r}]`, []string{"rebroadcast.allow[0].until", "RFC 3339"}},
		{"no reason", `[{rooms: [a, b]}]`, []string{"rebroadcast.allow[0].reason", "why"}},
		{"every problem at once", `[{rooms: [a], until: soon}, {rooms: [c, d], reason: r}]`,
			[]string{"allow[0].rooms", "allow[0].until", "allow[0].reason"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			if err := Decode(strings.NewReader("rebroadcast:\n  allow: "+tt.allow+"\n"), &c); err != nil {
				t.Fatal(err)
			}
			c.ResolvePaths()
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("valid allow list refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			if strings.Contains(tt.name, "every") && strings.Contains(err.Error(), "allow[1]") {
				t.Errorf("the good entry is reported:\n%v", err)
			}
		})
	}
}

func TestRebroadcastAllowUntil(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"2027-01-31", time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)},
		{"2027-01-31T18:00:00+01:00", time.Date(2027, 1, 31, 17, 0, 0, 0, time.UTC)},
	} {
		got, err := RebroadcastAllow{Until: c.in}.UntilTime()
		if err != nil || !got.Equal(c.want) {
			t.Errorf("%q: %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}
