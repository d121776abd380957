package config

// Crypto configures envelope encryption of speech and identity data.
type Crypto struct{}

func defaultCrypto() Crypto { return Crypto{} }

// validate reports every problem of the section through bad.
func (x *Crypto) validate(bad func(key, format string, a ...any)) {}

// resolvePaths fills path defaults under dataDir.
func (x *Crypto) resolvePaths(dataDir string) {}
