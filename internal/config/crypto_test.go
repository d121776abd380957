package config

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestCrypto(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		set     []string
		want    Crypto
		invalid string // key named in the error; "" = valid
	}{
		{name: "defaults", want: Crypto{KEKFile: filepath.Join("d", "secrets", "kek.key"), CreateKEK: true, KeyCacheTTL: time.Minute}},
		{
			name: "production",
			env:  []string{"EARSHOT_CRYPTO_KEK_FILE=/run/secrets/kek.key", "EARSHOT_CRYPTO_CREATE_KEK=false", "EARSHOT_CRYPTO_KEY_CACHE_TTL=10s"},
			want: Crypto{KEKFile: "/run/secrets/kek.key", KeyCacheTTL: 10 * time.Second},
		},
		{name: "cache off", set: []string{"crypto.key_cache_ttl=0s"}, want: Crypto{KEKFile: filepath.Join("d", "secrets", "kek.key"), CreateKEK: true}},
		{name: "negative ttl", set: []string{"crypto.key_cache_ttl=-1m"}, invalid: "crypto.key_cache_ttl"},
		{name: "ttl too long", set: []string{"crypto.key_cache_ttl=2h"}, invalid: "crypto.key_cache_ttl"},
		{
			name: "rotating",
			env:  []string{"EARSHOT_CRYPTO_KEK_FILE=/run/secrets/kek-2026.key", "EARSHOT_CRYPTO_PREVIOUS_KEK_FILES=/run/secrets/kek-2025.key"},
			want: Crypto{KEKFile: "/run/secrets/kek-2026.key", CreateKEK: true, KeyCacheTTL: time.Minute, PreviousKEKFiles: []string{"/run/secrets/kek-2025.key"}},
		},
		{name: "previous is current", env: []string{"EARSHOT_CRYPTO_KEK_FILE=/k/a.key", "EARSHOT_CRYPTO_PREVIOUS_KEK_FILES=/k/../k/a.key"}, invalid: "crypto.previous_kek_files[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := loadChecked(t, tc.env, tc.set, tc.invalid)
			if !ok {
				return
			}
			if !reflect.DeepEqual(c.Crypto, tc.want) {
				t.Errorf("crypto = %+v, want %+v", c.Crypto, tc.want)
			}
		})
	}
}
