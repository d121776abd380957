package config

// Serve configures the evidence and alert-action HTTP API (earshot serve).
type Serve struct{}

func defaultServe() Serve { return Serve{} }

// validate reports every problem of the section through bad.
func (x *Serve) validate(bad func(key, format string, a ...any)) {}

// resolvePaths fills path defaults under dataDir.
func (x *Serve) resolvePaths(dataDir string) {}
