package config

import (
	"log/slog"
	"net/url"
	"reflect"
	"slices"
	"strings"
)

// Secret is a setting that is a credential or carries one: a key, or a
// URL whose path or query holds a token (chat webhooks, engines behind a
// key in the query). It prints as <redacted> wherever it is formatted,
// logged or marshalled; Reveal gives the value to the code that uses it.
type Secret string

// Redacted is what a set Secret prints as.
const Redacted = "<redacted>"

// Reveal returns the value itself.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer: never the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return `config.Secret("` + s.String() + `")` }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalYAML writes the redacted form: a configuration printed for a bug
// report carries no credential.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalText is used by JSON and other text encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// redactedURL keeps a URL's scheme and host, for messages about a Secret
// URL that must say which server is meant.
func redactedURL(s Secret) string {
	u, err := url.Parse(s.Reveal())
	if err != nil || u.Host == "" {
		return "(not a URL)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// Public lists the settings printed as they are by Shown (and so by
// `earshot config show`): names, addresses, paths and tuning. Every other
// text setting, present or added later, is shown redacted: raw room IDs
// and participant identities are personal data, and a setting nobody
// classified may be a credential.
var Public = []string{
	"data_dir", "log.level", "log.format", "metrics.listen",
	"kafka.brokers", "kafka.client_id",
	"kafka.tls.ca_file", "kafka.tls.cert_file", "kafka.tls.key_file", "kafka.tls.server_name",
	"kafka.sasl.mechanism", "kafka.sasl.username", "kafka.sasl.password_file",
	"storage.backend", "storage.local.dir", "storage.s3.endpoint", "storage.s3.bucket", "storage.s3.region", "storage.s3.prefix",
	"storage.s3.secret_key_file", "storage.s3.sse",
	"identity.secret_file",
	"crypto.kek_file", "crypto.previous_kek_files",
	"ingest.janus.url", "ingest.janus.interface", "ingest.janus.identity_field", "ingest.spool_dir", "ingest.lease.instance",
	"ingest.bot_display_name", "ingest.rooms.mode",
	"transcribe.engine", "transcribe.model", "transcribe.model_path", "transcribe.window", "transcribe.language", "transcribe.api_key_file",
	"policy.file",
	"alerts.sinks.name", "alerts.sinks.type", "alerts.sinks.secret_file", "alerts.sinks.content",
	"alerts.classifier.api_key_file", "alerts.classifier.model",
	"serve.listen", "serve.public_url", "serve.link_secret_file", "serve.operators.name", "serve.operators.token_file",
	"compliance.signing_key_file", "compliance.consumer_group", "compliance.operators",
	"retention.default_class", "retention.rooms.class", "retention.classes.mode",
	"rebroadcast.watch.name",
}

// Shown returns a copy of c to print: Secret settings are redacted by their
// type, and every other text setting not in Public is redacted too
// (lists keep their length, so an operator still sees how many there are).
func Shown(c Config) Config {
	v := reflect.ValueOf(&c).Elem()
	redactValue(v, "")
	return c
}

var secretType = reflect.TypeOf(Secret(""))

func redactValue(v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" || !v.Field(i).CanSet() {
				continue
			}
			p := name
			if path != "" {
				p = path + "." + name
			}
			redactValue(v.Field(i), p)
		}
	case reflect.String:
		if v.Type() == secretType || slices.Contains(Public, path) || v.Len() == 0 {
			return // a Secret marshals redacted by itself
		}
		v.SetString(Redacted)
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice {
			if v.IsNil() {
				return
			}
			c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
			reflect.Copy(c, v)
			v.Set(c) // the caller's slice stays as it was
		}
		for i := range v.Len() {
			redactValue(v.Index(i), path)
		}
	case reflect.Map:
		if v.IsNil() {
			return
		}
		c := reflect.MakeMapWithSize(v.Type(), v.Len())
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			redactValue(e, path)
			c.SetMapIndex(k, e)
		}
		v.Set(c)
	case reflect.Pointer:
		if !v.IsNil() {
			e := reflect.New(v.Type().Elem())
			e.Elem().Set(v.Elem())
			redactValue(e.Elem(), path)
			v.Set(e)
		}
	}
}
