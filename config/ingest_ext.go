package config

// Lease is how ingest instances agree that at most one bot records a room.
type Lease struct{}

func defaultLease() Lease { return Lease{} }

// validate reports every problem of the section through bad.
func (x *Lease) validate(bad func(key, format string, a ...any)) {}

// Participants says which participants are never recorded.
type Participants struct{}

func defaultParticipants() Participants { return Participants{} }

// validate reports every problem of the section through bad.
func (x *Participants) validate(bad func(key, format string, a ...any)) {}
