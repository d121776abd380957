package transcribe

import "github.com/prometheus/client_golang/prometheus"

// workerMetrics are a worker's collectors; no per-room or per-speaker
// labels (pseudonyms are personal data, and unbounded).
type workerMetrics struct {
	tracks                                prometheus.Gauge
	audioSeconds                          prometheus.Counter
	utterances, transcripts, engineErrors prometheus.Counter
	deadLetters, corrupt                  prometheus.Counter
	erased                                prometheus.Counter
	engineSeconds                         prometheus.Histogram
	// engineAudioSeconds and pipelineSeconds give the engine's real-time
	// factor and the worker's own overhead (wall time spent on a chunk
	// outside engine calls: opening, decoding, segmenting, sealing; writing
	// to Kafka runs beside it, in produceSeconds).
	engineAudioSeconds, pipelineSeconds prometheus.Counter
	produceSeconds                      prometheus.Counter
	lag, overloaded                     prometheus.Gauge
	lagAlerts                           prometheus.Counter
	skippedChunks, skippedSeconds       prometheus.Counter
	// The settled pass (settle.go), apart from the live figures above.
	settleBatches, settleTranscripts prometheus.Counter
	settleDropped, settleErrors      prometheus.Counter
	settleSeconds                    prometheus.Counter
	settlePending                    prometheus.Gauge
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
		erased:       c("erased_chunks_total", "Chunks of speakers erased (keys destroyed) before they were transcribed: skipped and acked."),
		engineSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "earshot", Subsystem: "transcribe", Name: "engine_seconds",
			Help: "Engine wall time per utterance.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 10)}),
		engineAudioSeconds: c("engine_audio_seconds_total", "Seconds of audio sent to the engine."),
		pipelineSeconds:    c("pipeline_seconds_total", "Wall time spent handling chunks outside engine calls."),
		produceSeconds:     c("produce_seconds_total", "Wall time spent writing transcripts to Kafka (off the track goroutine, not part of pipeline_seconds_total)."),
		lag:                prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "earshot", Subsystem: "transcribe", Name: "consumer_lag_records", Help: "Records of earshot.audio not yet processed, over this worker's partitions."}),
		overloaded:         prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "earshot", Subsystem: "transcribe", Name: "overloaded", Help: "1 while the consumer lag is over backlog.lag_alert."}),
		lagAlerts:          c("lag_alerts_total", "Operational alerts raised for consumer lag."),
		skippedChunks:      c("skipped_chunks_total", "Chunks skipped under capacity mode (rooms not flagged)."),
		skippedSeconds:     c("skipped_audio_seconds_total", "Seconds of audio skipped under capacity mode."),
		settleBatches:      c("settle_batches_total", "Batches of speech transcribed again as the settled revision."),
		settleTranscripts:  c("settle_transcripts_total", "Transcript segments of the settled revision produced."),
		settleDropped:      c("settle_dropped_total", "Batches the settled pass dropped (queue full, worker behind on live audio, or shutting down); the final pass covers them."),
		settleErrors:       c("settle_errors_total", "Batches the settled pass could not transcribe or write."),
		settleSeconds:      c("settle_seconds_total", "Wall time of the settled pass (engine and sealing)."),
		settlePending:      prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "earshot", Subsystem: "transcribe", Name: "settle_pending", Help: "Batches of the settled pass queued or being transcribed."}),
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
	return []prometheus.Collector{m.tracks, m.audioSeconds, m.utterances, m.transcripts, m.engineErrors, m.deadLetters, m.corrupt, m.erased, m.engineSeconds,
		m.engineAudioSeconds, m.pipelineSeconds, m.produceSeconds, m.lag, m.overloaded, m.lagAlerts, m.skippedChunks, m.skippedSeconds,
		m.settleBatches, m.settleTranscripts, m.settleDropped, m.settleErrors, m.settleSeconds, m.settlePending}
}
