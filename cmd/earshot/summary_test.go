package main

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestSummaryCountsMetrics: the summary adds up the stages' own counters
// (alerts per category) and leaves out everything else.
func TestSummaryCountsMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	counter := func(name string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name})
		reg.MustRegister(c)
		return c
	}
	counter("earshot_spool_uploaded_total").Add(4)
	counter("earshot_transcribe_transcripts_total").Add(11)
	counter("earshot_transcribe_settle_transcripts_total").Add(3)
	counter("earshot_transcribe_engine_errors_total").Add(2)
	counter("earshot_ingest_segments_total").Add(99) // not a summary figure
	alerts := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "earshot_policy_alerts_total"}, []string{"category"})
	reg.MustRegister(alerts)
	alerts.WithLabelValues("pii.phone").Add(1)
	alerts.WithLabelValues("abuse.threat").Add(2)

	s, err := summarize(reg)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := s.MarshalText()
	want := "segments_stored=4\ntranscript_lines=11\nsettled_transcript_lines=3\nengine_errors=2\nalerts=3\n" +
		"alerts.abuse.threat=2\nalerts.pii.phone=1\n"
	if string(text) != want {
		t.Errorf("summary:\n%s\nwant:\n%s", text, want)
	}
}
