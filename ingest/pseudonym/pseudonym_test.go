package pseudonym

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var secret = bytes.Repeat([]byte{0x42}, 32)

func TestPersonMatchesHMAC(t *testing.T) {
	p, err := New(secret, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Independent oracle: the documented construction, computed here.
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("p\x00alice@example.com"))
	want := "p3_" + enc.EncodeToString(m.Sum(nil)[:20])
	if got := p.Person("alice@example.com"); got != want {
		t.Fatalf("Person = %q, want %q", got, want)
	}
}

func TestProperties(t *testing.T) {
	p, _ := New(secret, 1)
	other, _ := New(bytes.Repeat([]byte{7}, 32), 1)
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"stable", p.Person("u1"), p.Person("u1"), true},
		{"distinct identities", p.Person("u1"), p.Person("u2"), false},
		{"room and person domains differ", p.Person("1234"), p.Room("1234"), false},
		{"secret matters", p.Person("u1"), other.Person("u1"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if (tt.a == tt.b) != tt.same {
				t.Fatalf("%q vs %q: same=%v, want %v", tt.a, tt.b, tt.a == tt.b, tt.same)
			}
		})
	}
	if strings.Contains(p.Person("canary-XYZ"), "canary") {
		t.Fatal("pseudonym leaks the identity")
	}
}

func TestRejectsWeakSecret(t *testing.T) {
	if _, err := New([]byte("short"), 1); err == nil {
		t.Fatal("short secret accepted")
	}
	if _, err := New(secret, 0); err == nil {
		t.Fatal("version 0 accepted")
	}
}

func TestAllCoversOlderVersions(t *testing.T) {
	old, _ := New(bytes.Repeat([]byte{9}, 32), 1)
	p, _ := New(secret, 2)
	if err := p.AddOlder(bytes.Repeat([]byte{9}, 32), 1); err != nil {
		t.Fatal(err)
	}
	all := p.All(KindPerson, "bob")
	if len(all) != 2 || all[0] != p.Person("bob") || all[1] != old.Person("bob") {
		t.Fatalf("All = %v", all)
	}
}

// TestResolve: what an operator types is resolved to stored pseudonyms,
// a pseudonym is kept as it is (never hashed again), and a pseudonym of
// the other kind is taken as a raw ID.
func TestResolve(t *testing.T) {
	old, _ := New(bytes.Repeat([]byte{9}, 32), 1)
	p, _ := New(secret, 2)
	if err := p.AddOlder(bytes.Repeat([]byte{9}, 32), 1); err != nil {
		t.Fatal(err)
	}
	room := p.Room("1234")
	for _, tc := range []struct {
		kind, id string
		all      []string
		current  string
	}{
		{KindRoom, "1234", []string{room, old.Room("1234")}, room},
		{KindRoom, room, []string{room}, room},
		{KindRoom, old.Room("1234"), []string{old.Room("1234")}, old.Room("1234")},
		{KindPerson, "bob", []string{p.Person("bob"), old.Person("bob")}, p.Person("bob")},
		{KindPerson, room, p.All(KindPerson, room), p.Person(room)},
	} {
		if got := p.Resolve(tc.kind, tc.id); !slices.Equal(got, tc.all) {
			t.Errorf("Resolve(%s, %s) = %v, want %v", tc.kind, tc.id, got, tc.all)
		}
		if got := p.ResolveCurrent(tc.kind, tc.id); got != tc.current {
			t.Errorf("ResolveCurrent(%s, %s) = %s, want %s", tc.kind, tc.id, got, tc.current)
		}
	}
}

func TestIsPseudonym(t *testing.T) {
	p, _ := New(secret, 1)
	for _, tt := range []struct {
		s    string
		kind string
		want bool
	}{
		{p.Person("x"), KindPerson, true},
		{p.Room("x"), KindRoom, true},
		{p.Room("x"), KindPerson, false},
		{"alice", KindPerson, false},
		{"p1_short", KindPerson, false},
		{"p0_" + strings.Repeat("a", 32), KindPerson, false},
	} {
		if got := IsPseudonym(tt.kind, tt.s); got != tt.want {
			t.Errorf("IsPseudonym(%q, %q) = %v, want %v", tt.kind, tt.s, got, tt.want)
		}
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "secret")
	a, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) || len(a) != MinSecretBytes {
		t.Fatalf("secret not persisted: %x vs %x", a, b)
	}
}
