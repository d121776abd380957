package event

import "strings"

// StageAccess is what one stage's Kafka principal may do: the topics it
// reads and writes and the consumer groups it joins. Access lists every
// stage; `earshot kafka acls` turns the list into the cluster's ACLs, so a
// stage whose credentials leak can forge only what that stage writes.
type StageAccess struct {
	// Stage is the earshot command that runs the stage.
	Stage string
	// Principal is the stage's SCRAM user (its Kafka principal is
	// "User:<Principal>").
	Principal string
	// Reads are the topics it consumes or reads back.
	Reads []string
	// Writes are the topics it produces to.
	Writes []string
	// Groups are the prefixes of the consumer groups it joins.
	Groups []string
	// TopicConfigs: it describes and alters every topic's configs (the
	// retention sweeper keeps retention.ms at the configured values).
	TopicConfigs bool
	// Configs are the topics whose configs it describes and alters.
	Configs []string
}

// DefaultPrincipal is the SCRAM user of stage when the deployment does not
// name another: "earshot-<stage>".
func DefaultPrincipal(stage string) string { return "earshot-" + stage }

// Access is the access table of every stage, for topics named
// prefix+<topic> (prefix is empty in a deployment; tests use a fresh one).
// complianceGroup is the compliance archive's consumer group
// (compliance.consumer_group). Every principal may also describe every
// Earshot topic: a stage checks at start that the topics exist with enough
// replicas, and metadata reveals no record.
//
// The table follows what each stage's code produces and consumes:
//   - ingest writes live audio, stored segments and track lifecycle,
//     keeps its room leases in the compacted state topic (read back), and
//     writes its full-spool alert to the ops topic;
//   - transcribe reads audio, lifecycle (the final pass) and alerts plus
//     actions (flags that raise a room's transcription quality); it writes
//     transcripts, dead letters, and its operational lag alerts to the
//     ops topic, never the alerts topic;
//   - policy (with notify) reads transcripts and its own alerts (window
//     rebuild, notification) and the ops topic (notification), and writes
//     alerts and dead letters;
//   - serve reads alerts, actions and the live topics for the console,
//     and writes moderator actions and audit entries;
//   - compliance archives transcripts, alerts, actions and lifecycle,
//     writes audit entries and dead letters, and sets topic retention;
//   - rebroadcast reads audio, follows the fingerprints, lifecycle,
//     alerts (what it raised already) and audit (erasures) topics, writes
//     fingerprints, alerts and dead letters (and the ops alert of an
//     outside stream it cannot decode), and keeps the fingerprints
//     topic's retention at its window.
func Access(prefix, complianceGroup string) []StageAccess {
	t := func(names ...string) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = prefix + n
		}
		return out
	}
	if complianceGroup == "" {
		complianceGroup = "earshot-compliance"
	}
	table := []StageAccess{
		{Stage: "ingest",
			Reads:  t(TopicState),
			Writes: t(TopicAudio, TopicSegments, TopicLifecycle, TopicState, TopicOps)},
		{Stage: "transcribe",
			Reads:  t(TopicAudio, TopicLifecycle, TopicAlerts, TopicAlertActions),
			Writes: t(TopicTranscripts, TopicDeadLetter, TopicOps),
			Groups: []string{prefix + "earshot-transcribe"}},
		{Stage: "policy",
			Reads:  t(TopicTranscripts, TopicAlerts, TopicOps),
			Writes: t(TopicAlerts, TopicDeadLetter),
			Groups: []string{prefix + "earshot-policy", prefix + "earshot-notify"}},
		{Stage: "serve",
			Reads:  t(TopicAlerts, TopicAlertActions, TopicLifecycle, TopicSegments, TopicTranscripts),
			Writes: t(TopicAlertActions, TopicAudit)},
		{Stage: "compliance",
			Reads:        t(TopicTranscripts, TopicAlerts, TopicAlertActions, TopicLifecycle),
			Writes:       t(TopicAudit, TopicDeadLetter),
			Groups:       []string{prefix + complianceGroup},
			TopicConfigs: true},
		{Stage: "rebroadcast",
			Reads:   t(TopicAudio, TopicFingerprints, TopicLifecycle, TopicAlerts, TopicAudit),
			Writes:  t(TopicFingerprints, TopicAlerts, TopicDeadLetter, TopicOps),
			Groups:  []string{prefix + "earshot-rebroadcast"},
			Configs: t(TopicFingerprints)},
	}
	for i := range table {
		table[i].Principal = DefaultPrincipal(table[i].Stage)
	}
	return table
}

// Stages returns the stage names of the access table, in its order.
func Stages() []string {
	var out []string
	for _, a := range Access("", "") {
		out = append(out, a.Stage)
	}
	return out
}

// TopicPrefix is the prefix shared by every Earshot topic name (after a
// deployment's own prefix): the resource of the describe ACLs.
func TopicPrefix(prefix string) string {
	return prefix + strings.SplitAfter(TopicAudio, ".")[0]
}
