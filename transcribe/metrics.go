package transcribe

import "github.com/prometheus/client_golang/prometheus"

// workerMetrics are a worker's collectors; no per-room or per-speaker
// labels (pseudonyms are personal data, and unbounded).
type workerMetrics struct {
	tracks                                prometheus.Gauge
	audioSeconds                          prometheus.Counter
	utterances, transcripts, engineErrors prometheus.Counter
	deadLetters, corrupt                  prometheus.Counter
	engineSeconds                         prometheus.Histogram
}

func newWorkerMetrics() *workerMetrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "earshot", Subsystem: "transcribe", Name: name, Help: help})
	}
	return &workerMetrics{
		tracks:       prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "earshot", Subsystem: "transcribe", Name: "tracks", Help: "Tracks this worker holds state for."}),
		audioSeconds: c("audio_seconds_total", "Seconds of audio decoded."),
		utterances:   c("utterances_total", "Utterances sent to the engine."),
		transcripts:  c("transcripts_total", "Transcript segments produced."),
		engineErrors: c("engine_errors_total", "Engine calls that failed after retries."),
		deadLetters:  c("dead_letters_total", "Records sent to the dead-letter topic."),
		corrupt:      c("corrupt_chunks_total", "Chunks with undecodable packets."),
		engineSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "earshot", Subsystem: "transcribe", Name: "engine_seconds",
			Help: "Engine wall time per utterance.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 10)}),
	}
}

// Describe implements prometheus.Collector.
func (m *workerMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *workerMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.all() {
		c.Collect(ch)
	}
}

func (m *workerMetrics) all() []prometheus.Collector {
	return []prometheus.Collector{m.tracks, m.audioSeconds, m.utterances, m.transcripts, m.engineErrors, m.deadLetters, m.corrupt, m.engineSeconds}
}
