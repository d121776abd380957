package config

// Retention sets how long audio and events are kept, per room class.
type Retention struct{}

func defaultRetention() Retention { return Retention{} }

// validate reports every problem of the section through bad.
func (x *Retention) validate(bad func(key, format string, a ...any)) {}

// Compliance configures audit, export signing and erasure.
type Compliance struct{}

func defaultCompliance() Compliance { return Compliance{} }

// validate reports every problem of the section through bad.
func (x *Compliance) validate(bad func(key, format string, a ...any)) {}

// resolvePaths fills path defaults under dataDir.
func (x *Compliance) resolvePaths(dataDir string) {}
