package ingest

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/record"
)

// metrics are the stage's Prometheus collectors. Labels never carry room,
// speaker or track: pseudonyms are personal data too, and unbounded label
// values would swamp the metrics store.
type metrics struct {
	rooms, tracks, spoolFull                   prometheus.Gauge
	chunks, chunksDropped                      prometheus.Counter
	segments, segmentErrors, manifestErrors    prometheus.Counter
	packets, lost, late, duplicates, malformed prometheus.Counter
	gapSamples                                 *prometheus.CounterVec
}

func newMetrics() *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "earshot", Subsystem: "ingest", Name: name, Help: help})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "earshot", Subsystem: "ingest", Name: name, Help: help})
	}
	return &metrics{
		rooms:          g("rooms", "Rooms a bot is in."),
		tracks:         g("tracks", "Tracks being recorded."),
		spoolFull:      g("spool_full", "1 while the instance keeps out of rooms because its spool disk was full."),
		chunks:         c("chunks_total", "Live chunks made."),
		chunksDropped:  c("chunks_dropped_total", "Live chunks dropped because the broker queue was full."),
		segments:       c("segments_total", "Segments committed to the spool."),
		segmentErrors:  c("segment_errors_total", "Segments that could not be spooled."),
		manifestErrors: c("manifest_errors_total", "Session manifests that could not be written (written again at the next track or session end)."),
		packets:        c("packets_total", "RTP packets placed on timelines (counted when a track ends)."),
		lost:           c("packets_lost_total", "RTP packets lost (counted when a track ends)."),
		late:           c("packets_late_total", "RTP packets dropped as late."),
		duplicates:     c("packets_duplicate_total", "Duplicate RTP packets."),
		malformed:      c("packets_malformed_total", "Malformed RTP packets rejected."),
		gapSamples: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "earshot", Subsystem: "ingest", Name: "gap_samples_total",
			Help: "Timeline samples filled with silence, by cause."}, []string{"cause"}),
	}
}

func (m *metrics) observe(s record.Stats) {
	m.packets.Add(float64(s.Packets))
	m.lost.Add(float64(s.Lost))
	m.late.Add(float64(s.Late))
	m.duplicates.Add(float64(s.Duplicates))
	m.malformed.Add(float64(s.Malformed))
	m.gapSamples.WithLabelValues("loss").Add(float64(s.Gaps.Loss))
	m.gapSamples.WithLabelValues("silence").Add(float64(s.Gaps.Silence))
	m.gapSamples.WithLabelValues("mute").Add(float64(s.Gaps.Mute))
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.all() {
		c.Collect(ch)
	}
}

func (m *metrics) all() []prometheus.Collector {
	return []prometheus.Collector{m.rooms, m.tracks, m.spoolFull, m.chunks, m.chunksDropped, m.segments, m.segmentErrors, m.manifestErrors,
		m.packets, m.lost, m.late, m.duplicates, m.malformed, m.gapSamples}
}
