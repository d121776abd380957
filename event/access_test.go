package event

import (
	"slices"
	"strings"
	"testing"
)

// TestAccessWriters: the stages that may write each topic, as the
// security design states it (a leaked stage credential forges only what
// that stage writes). Alerts have two writers, both detectors: the policy
// stage and the rebroadcast stage; transcribe's lag alerts (and the
// rebroadcast watcher's "stream unavailable", ingest's full spool) go to
// the ops topic, so the
// transcribe credential cannot forge a moderation alert.
func TestAccessWriters(t *testing.T) {
	want := map[string][]string{
		TopicAudio:        {"ingest"},
		TopicSegments:     {"ingest"},
		TopicLifecycle:    {"ingest"},
		TopicState:        {"ingest"},
		TopicTranscripts:  {"transcribe"},
		TopicAlerts:       {"policy", "rebroadcast"},
		TopicOps:          {"ingest", "rebroadcast", "transcribe"},
		TopicFingerprints: {"rebroadcast"},
		TopicAlertActions: {"serve"},
		TopicAudit:        {"compliance", "serve"},
		TopicDeadLetter:   {"compliance", "policy", "rebroadcast", "transcribe"},
	}
	got := map[string][]string{}
	for _, a := range Access("", "") {
		for _, tp := range a.Writes {
			got[tp] = append(got[tp], a.Stage)
		}
	}
	for _, spec := range Topics(1) {
		w := got[spec.Name]
		slices.Sort(w)
		if !slices.Equal(w, want[spec.Name]) {
			t.Errorf("%s is written by %v, want %v", spec.Name, w, want[spec.Name])
		}
	}
}

// TestAccessTable: every principal is distinct and named after its stage,
// every topic it names is one of Earshot's (under the prefix), every topic
// read has a writer, and groups carry the prefix.
func TestAccessTable(t *testing.T) {
	for _, prefix := range []string{"", "t-1."} {
		known := map[string]bool{}
		for _, s := range Topics(1) {
			known[prefix+s.Name] = true
		}
		written := map[string]bool{}
		principals := map[string]bool{}
		table := Access(prefix, "archive-group")
		for _, a := range table {
			if principals[a.Principal] || a.Principal != DefaultPrincipal(a.Stage) {
				t.Errorf("%s: principal %q is reused or not earshot-<stage>", a.Stage, a.Principal)
			}
			principals[a.Principal] = true
			for _, tp := range append(slices.Clone(a.Reads), a.Writes...) {
				if !known[tp] {
					t.Errorf("%s names %q, not an Earshot topic under %q", a.Stage, tp, prefix)
				}
			}
			for _, tp := range a.Writes {
				written[tp] = true
			}
			for _, g := range a.Groups {
				if !strings.HasPrefix(g, prefix) {
					t.Errorf("%s: group %q lacks the prefix %q", a.Stage, g, prefix)
				}
			}
		}
		for _, a := range table {
			for _, tp := range a.Reads {
				if !written[tp] {
					t.Errorf("%s reads %s, which no stage writes", a.Stage, tp)
				}
			}
		}
		if i := slices.IndexFunc(table, func(a StageAccess) bool { return a.Stage == "compliance" }); i < 0 || !slices.Contains(table[i].Groups, prefix+"archive-group") {
			t.Errorf("compliance does not join its configured group under %q", prefix)
		}
		if got := TopicPrefix(prefix); got != prefix+"earshot." {
			t.Errorf("TopicPrefix(%q) = %q", prefix, got)
		}
	}
}
