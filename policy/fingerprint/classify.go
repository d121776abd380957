package fingerprint

// Alert categories a match raises.
const (
	// CategoryRebroadcast is speech of one room heard in another.
	CategoryRebroadcast = "leak.rebroadcast"
	// CategorySharedAudio is the same non-speech audio in two rooms (hold
	// music, a jingle, a shared stream's background): worth knowing, not
	// a leak of what people said.
	CategorySharedAudio = "audio.shared"
)

// Classify gives a match's alert category and severity (event.Alert's
// low/medium/high/critical). The reference is the original when it
// started earlier; a private or confidential origin raises the severity,
// since its audio was never meant to leave the room.
func Classify(m Match) (category, severity string) {
	if !m.Speech {
		return CategorySharedAudio, "low"
	}
	src := m.Ref
	if m.QueryMS()[0] < m.RefMS()[0] {
		src = m.Query
	}
	if src.Private {
		return CategoryRebroadcast, "critical"
	}
	return CategoryRebroadcast, "high"
}
