package event

import "time"

// Topic names. Keys say which records must stay in order: a track's audio
// goes to one partition, a room's transcripts and alerts to one partition.
const (
	TopicAudio        = "earshot.audio"         // live chunks, key = track
	TopicSegments     = "earshot.segments"      // stored segments, key = track
	TopicLifecycle    = "earshot.lifecycle"     // tracks, sessions, bots; key = room
	TopicTranscripts  = "earshot.transcripts"   // key = room
	TopicAlerts       = "earshot.alerts"        // key = room
	TopicAlertActions = "earshot.alert-actions" // key = room
	TopicAudit        = "earshot.audit"         // key = subject of the action
	TopicDeadLetter   = "earshot.deadletter"    // original record plus the reason
	TopicState        = "earshot.state"         // compacted: state a stage rebuilds after a restart
	TopicFingerprints = "earshot.fingerprints"  // keyed audio fingerprints, key = track
	TopicOps          = "earshot.ops"           // operational alerts (no room, no speech), key = category
)

// FingerprintRetention is how long earshot.fingerprints keeps records: the
// rebroadcast index's default window.
const FingerprintRetention = 30 * time.Minute

// TopicSpec is how a topic is created when missing.
type TopicSpec struct {
	Name       string
	Partitions int
	// Compact keeps the newest record per key forever (state topics);
	// otherwise records expire after Retention.
	Compact   bool
	Retention time.Duration
	// Config holds further topic configs.
	Config map[string]string
}

// Topics lists every topic with its default shape. Retention here is the
// Kafka copy only; stored audio and transcripts follow the retention policy
// of their room class, which the sweeper enforces.
func Topics(partitions int) []TopicSpec {
	if partitions < 1 {
		partitions = 1
	}
	day := 24 * time.Hour
	return []TopicSpec{
		{Name: TopicAudio, Partitions: partitions, Retention: day},
		{Name: TopicSegments, Partitions: partitions, Retention: 7 * day},
		{Name: TopicLifecycle, Partitions: partitions, Retention: 7 * day},
		{Name: TopicTranscripts, Partitions: partitions, Retention: 7 * day},
		{Name: TopicAlerts, Partitions: partitions, Retention: 30 * day},
		{Name: TopicAlertActions, Partitions: partitions, Retention: 30 * day},
		// Operational alerts (a stage falling behind) are few and about
		// the system, not a room: one partition keeps them in order.
		{Name: TopicOps, Partitions: 1, Retention: 30 * day},
		{Name: TopicAudit, Partitions: 1, Retention: 365 * day},
		{Name: TopicDeadLetter, Partitions: 1, Retention: 30 * day},
		// Fingerprints are kept no longer than the rebroadcast index
		// window (personal data); the stage sets a longer window's
		// retention itself.
		{Name: TopicFingerprints, Partitions: partitions, Retention: FingerprintRetention},
		// Leases renew every few seconds and every instance reads the
		// whole topic at start-up: roll segments hourly and clean eagerly,
		// since Kafka compacts closed segments only.
		{Name: TopicState, Partitions: partitions, Compact: true,
			Config: map[string]string{"segment.ms": "3600000", "min.cleanable.dirty.ratio": "0.1"}},
	}
}
