package rebroadcast

import "github.com/prometheus/client_golang/prometheus"

// stageMetrics are the stage's collectors. No room, speaker or track
// labels: pseudonyms are personal data, and unbounded.
type stageMetrics struct {
	chunks, decodeErrors, deadLetters, erasedChunks prometheus.Counter
	published, indexedLocal, indexedRemote          prometheus.Counter
	recordsSkipped                                  prometheus.Counter
	matches                                         prometheus.Counter
	alerts                                          *prometheus.CounterVec
	duplicates                                      prometheus.Counter
	erasures, erasedTracks                          prometheus.Counter
	audioLag, fingerprintsLag                       prometheus.Gauge
	rebuildSeconds                                  prometheus.Gauge
	index                                           []prometheus.Collector
}

func newStageMetrics(s *Stage) *stageMetrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "earshot", Subsystem: "rebroadcast", Name: name, Help: help})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "earshot", Subsystem: "rebroadcast", Name: name, Help: help})
	}
	m := &stageMetrics{
		chunks:         c("chunks_total", "Audio chunks decoded and fingerprinted."),
		decodeErrors:   c("decode_errors_total", "Chunks with packets that did not decode (used as silence, the chunk dead-lettered)."),
		deadLetters:    c("dead_letters_total", "Chunks sent to the dead-letter topic."),
		erasedChunks:   c("erased_chunks_total", "Chunks of erased speakers or rooms: acknowledged, not fingerprinted."),
		published:      c("landmarks_published_total", "Landmarks this instance extracted and published on the fingerprints topic."),
		indexedLocal:   c("landmarks_indexed_local_total", "Landmarks of this instance's own tracks indexed."),
		indexedRemote:  c("landmarks_indexed_remote_total", "Landmarks of other instances' records indexed (the rebuild after a start included)."),
		recordsSkipped: c("records_skipped_total", "Fingerprint records not indexed: malformed, or of an erased speaker or room."),
		matches:        c("matches_total", "Matches that reached the thresholds (before de-duplication)."),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "earshot", Subsystem: "rebroadcast", Name: "alerts_total",
			Help: "Alerts raised, by category (leak.rebroadcast, audio.shared) and severity."}, []string{"category", "severity"}),
		duplicates:      c("alerts_duplicate_total", "Matches whose alert was raised already (by this or another instance, or before a restart): not raised again."),
		erasures:        c("erasures_total", "Erasure entries of the audit log applied to the index."),
		erasedTracks:    c("erased_tracks_total", "Tracks dropped from the index by erasure."),
		audioLag:        g("consumer_lag_records", "Records of earshot.audio not yet processed, over this instance's partitions."),
		fingerprintsLag: g("fingerprints_lag_records", "Records of the fingerprints topic not yet indexed by this instance, over all partitions."),
		rebuildSeconds:  g("rebuild_seconds", "How long the last start took to rebuild the index, the raised alerts and the erasures from Kafka."),
	}
	stat := func(name, help string, f func(tracks, landmarks int, bytes int64) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "earshot", Subsystem: "rebroadcast", Name: name, Help: help},
			func() float64 { return f(s.IndexStats()) })
	}
	m.index = []prometheus.Collector{
		stat("index_tracks", "Tracks the index holds (all rooms of the window).", func(t, _ int, _ int64) float64 { return float64(t) }),
		stat("index_landmarks", "Landmarks the index holds.", func(_, n int, _ int64) float64 { return float64(n) }),
		stat("index_bytes", "Estimated memory of the index (entries with slack, levels, slot table).", func(_, _ int, b int64) float64 { return float64(b) }),
	}
	return m
}

// Describe implements prometheus.Collector.
func (m *stageMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *stageMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.all() {
		c.Collect(ch)
	}
}

func (m *stageMetrics) all() []prometheus.Collector {
	return append([]prometheus.Collector{m.chunks, m.decodeErrors, m.deadLetters, m.erasedChunks, m.published, m.indexedLocal, m.indexedRemote,
		m.recordsSkipped, m.matches, m.alerts, m.duplicates, m.erasures, m.erasedTracks, m.audioLag, m.fingerprintsLag, m.rebuildSeconds}, m.index...)
}

// alerted counts a raised alert.
func (m *stageMetrics) alerted(p AlertPayload) {
	m.alerts.WithLabelValues(p.Category, p.Severity).Inc()
}
