package lease

import (
	"testing"
	"time"
)

// FuzzApply feeds arbitrary records to the table: it must never panic,
// and an accepted lease always names a holder.
func FuzzApply(f *testing.F) {
	f.Add("lease/r", []byte(`{"holder":"a/1","instance":"a","epoch":1,"ttl_ms":10000}`))
	f.Add("lease/r", []byte(`{"holder":"a/1","epoch":-5,"ttl_ms":1,"released":true}`))
	f.Add("session/r", []byte(`{"session":"ses_x","opened":"2026-01-01T00:00:00Z","stays":2}`))
	f.Add("session/r", []byte(`{"session":""}`))
	f.Add("other", []byte(`[]`))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		m, err := newManager(Config{Instance: "me"})
		if err != nil {
			t.Fatal(err)
		}
		m.apply(key, value, time.Now())
		m.apply(key, value, time.Time{})
		m.apply(key, nil, time.Now())
		m.apply(key, value, time.Now())
		for k, e := range m.leases {
			if e.rec.Holder == "" || e.rec.TTLMS <= 0 {
				t.Errorf("%s: accepted %+v", k, e.rec)
			}
		}
		for k, s := range m.sessions {
			if s.ID == "" {
				t.Errorf("%s: accepted a session without ID", k)
			}
		}
	})
}
