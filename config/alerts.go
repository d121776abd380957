package config

// Alerts configures alert de-duplication, rate limits, sinks and the external classifier.
type Alerts struct{}

func defaultAlerts() Alerts { return Alerts{} }

// validate reports every problem of the section through bad.
func (x *Alerts) validate(bad func(key, format string, a ...any)) {}
