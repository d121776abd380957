package spool

import (
	"strconv"
	"testing"
	"time"
)

func TestSegmentEnd(t *testing.T) {
	origin := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		md   map[string]string
		want time.Time // zero: not placed
	}{
		{"one second", map[string]string{MetaOrigin: "2026-11-01T12:00:00Z", MetaLastSample: "47999"}, origin.Add(time.Second)},
		{"half a minute in", map[string]string{MetaOrigin: "2026-11-01T12:00:00.5Z", MetaFirstSample: "1440000", MetaLastSample: "2879999"}, origin.Add(60*time.Second + 500*time.Millisecond)},
		{"other zone", map[string]string{MetaOrigin: "2026-11-01T13:00:00+01:00", MetaLastSample: "47"}, origin.Add(time.Millisecond)},
		{"no metadata", nil, time.Time{}},
		{"no origin", map[string]string{MetaLastSample: "47999"}, time.Time{}},
		{"no last sample", map[string]string{MetaOrigin: "2026-11-01T12:00:00Z"}, time.Time{}},
		{"negative last sample", map[string]string{MetaOrigin: "2026-11-01T12:00:00Z", MetaLastSample: "-2"}, time.Time{}},
		{"broken origin", map[string]string{MetaOrigin: "yesterday", MetaLastSample: "47999"}, time.Time{}},
		{"last sample past a year", map[string]string{MetaOrigin: "2026-11-01T12:00:00Z", MetaLastSample: "9223372036854775807"}, time.Time{}},
		{"last sample not a number", map[string]string{MetaOrigin: "2026-11-01T12:00:00Z", MetaLastSample: "1e6"}, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := SegmentEnd(tc.md)
			if ok != !tc.want.IsZero() || !got.Equal(tc.want) {
				t.Errorf("SegmentEnd(%v) = %v, %v; want %v", tc.md, got, ok, tc.want)
			}
		})
	}
}

func FuzzSegmentEnd(f *testing.F) {
	f.Add("2026-11-01T12:00:00Z", "47999")
	f.Add("2026-11-01T12:00:00.123456789+05:30", "0")
	f.Add("", "-1")
	f.Fuzz(func(t *testing.T, origin, last string) {
		end, ok := SegmentEnd(map[string]string{MetaOrigin: origin, MetaLastSample: last})
		if !ok {
			return
		}
		o, err := time.Parse(time.RFC3339Nano, origin)
		n, err2 := strconv.ParseInt(last, 10, 64)
		if err != nil || err2 != nil || n < 0 {
			t.Fatalf("placed a segment from origin %q, last sample %q", origin, last)
		}
		if end.Before(o) {
			t.Fatalf("segment ends at %v, before its origin %v", end, o)
		}
	})
}
