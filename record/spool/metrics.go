package spool

import "github.com/prometheus/client_golang/prometheus"

// Metric descriptions. The names carry no labels: one uploader per process
// drains one spool.
var (
	descUploaded = prometheus.NewDesc("earshot_spool_uploaded_total",
		"Segments stored, announced on earshot.segments and removed from the spool.", nil, nil)
	descAlreadyStored = prometheus.NewDesc("earshot_spool_already_stored_total",
		"Uploads that found the same bytes already stored (an earlier upload whose confirmation was lost).", nil, nil)
	descRetries = prometheus.NewDesc("earshot_spool_retries_total",
		"Failed upload, announce or spool steps that were retried (store or broker unavailable).", nil, nil)
	descConflicts = prometheus.NewDesc("earshot_spool_conflicts_total",
		"Segments whose object key already held different bytes: not overwritten, moved to conflicts/. Any increase needs an operator.", nil, nil)
	descRejected = prometheus.NewDesc("earshot_spool_rejected_total",
		"Spool entries that could not be read and were moved to rejected/.", nil, nil)
	descPendingEntries = prometheus.NewDesc("earshot_spool_pending_entries",
		"Segments waiting in the spool for upload.", nil, nil)
	descPendingBytes = prometheus.NewDesc("earshot_spool_pending_bytes",
		"Bytes of the segments waiting in the spool.", nil, nil)
)

var _ prometheus.Collector = (*Uploader)(nil)

// Describe implements prometheus.Collector, so the uploader can be
// registered as is.
func (u *Uploader) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUploaded, descAlreadyStored, descRetries, descConflicts, descRejected, descPendingEntries, descPendingBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector from Stats.
func (u *Uploader) Collect(ch chan<- prometheus.Metric) {
	s := u.Stats()
	for _, m := range []struct {
		d *prometheus.Desc
		t prometheus.ValueType
		v float64
	}{
		{descUploaded, prometheus.CounterValue, float64(s.Uploaded)},
		{descAlreadyStored, prometheus.CounterValue, float64(s.AlreadyStored)},
		{descRetries, prometheus.CounterValue, float64(s.Retries)},
		{descConflicts, prometheus.CounterValue, float64(s.Conflicts)},
		{descRejected, prometheus.CounterValue, float64(s.Rejected)},
		{descPendingEntries, prometheus.GaugeValue, float64(s.PendingEntries)},
		{descPendingBytes, prometheus.GaugeValue, float64(s.PendingBytes)},
	} {
		ch <- prometheus.MustNewConstMetric(m.d, m.t, m.v)
	}
}
