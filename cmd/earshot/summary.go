package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// runSummary is what one process did, counted from its own metrics: the
// figures a user (and testbed/demo.sh) checks after a run, without reading
// log text.
type runSummary struct {
	SegmentsStored  int64            // segments stored and announced (the uploader's count)
	TranscriptLines int64            // live transcript segments produced
	SettledLines    int64            // settled-revision transcript segments produced
	EngineErrors    int64            // engine calls that failed after retries
	Alerts          map[string]int64 // alerts raised, by category
}

// summaryFields maps the metric families a summary reads to its fields.
func summaryFields() map[string]func(*runSummary) *int64 {
	return map[string]func(*runSummary) *int64{
		"earshot_spool_uploaded_total":                func(s *runSummary) *int64 { return &s.SegmentsStored },
		"earshot_transcribe_transcripts_total":        func(s *runSummary) *int64 { return &s.TranscriptLines },
		"earshot_transcribe_settle_transcripts_total": func(s *runSummary) *int64 { return &s.SettledLines },
		"earshot_transcribe_engine_errors_total":      func(s *runSummary) *int64 { return &s.EngineErrors },
	}
}

// summarize reads a summary from the process's metrics. A stage that did
// not run contributes zeros.
func summarize(g prometheus.Gatherer) (runSummary, error) {
	s := runSummary{Alerts: map[string]int64{}}
	fields := summaryFields()
	mfs, err := g.Gather()
	if err != nil {
		return s, fmt.Errorf("summary: gather metrics: %w", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "earshot_policy_alerts_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "category" {
						s.Alerts[l.GetValue()] += int64(m.GetCounter().GetValue())
					}
				}
			}
			continue
		}
		field, ok := fields[mf.GetName()]
		if !ok {
			continue
		}
		for _, m := range mf.GetMetric() {
			*field(&s) += int64(m.GetCounter().GetValue())
		}
	}
	return s, nil
}

// AlertTotal is the number of alerts raised, all categories.
func (s runSummary) AlertTotal() int64 {
	var n int64
	for _, v := range s.Alerts {
		n += v
	}
	return n
}

// MarshalText writes one name=value line per figure (alerts per category
// as alerts.<category>=N, in category order), for shell scripts to read.
func (s runSummary) MarshalText() ([]byte, error) {
	var b bytes.Buffer
	line := func(name string, v int64) { b.WriteString(name + "=" + strconv.FormatInt(v, 10) + "\n") }
	line("segments_stored", s.SegmentsStored)
	line("transcript_lines", s.TranscriptLines)
	line("settled_transcript_lines", s.SettledLines)
	line("engine_errors", s.EngineErrors)
	line("alerts", s.AlertTotal())
	cats := make([]string, 0, len(s.Alerts))
	for c := range s.Alerts {
		cats = append(cats, c)
	}
	slices.Sort(cats)
	for _, c := range cats {
		line("alerts."+c, s.Alerts[c])
	}
	return b.Bytes(), nil
}

// writeSummary logs the process's summary and, when path is set, writes it
// there (MarshalText's format).
func writeSummary(reg prometheus.Gatherer, path string, log *slog.Logger) error {
	s, err := summarize(reg)
	if err != nil {
		return err
	}
	log.Info("run summary", "segments_stored", s.SegmentsStored, "transcript_lines", s.TranscriptLines,
		"settled_transcript_lines", s.SettledLines, "engine_errors", s.EngineErrors, "alerts", s.AlertTotal(), "alerts_by_category", s.Alerts)
	if path == "" {
		return nil
	}
	text, _ := s.MarshalText()
	if err := os.WriteFile(path, text, 0o644); err != nil {
		return fmt.Errorf("summary: write %s: %w", path, err)
	}
	return nil
}
