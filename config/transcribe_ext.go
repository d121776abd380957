package config

// Backlog is what transcription does when engines fall behind.
type Backlog struct{}

func defaultBacklog() Backlog { return Backlog{} }

// validate reports every problem of the section through bad.
func (x *Backlog) validate(bad func(key, format string, a ...any)) {}

// RoomLanguages sets the transcription language per room.
type RoomLanguages struct{}

func defaultRoomLanguages() RoomLanguages { return RoomLanguages{} }

// validate reports every problem of the section through bad.
func (x *RoomLanguages) validate(bad func(key, format string, a ...any)) {}
