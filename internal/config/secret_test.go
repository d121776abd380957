package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// fillCanaries sets every text setting of v (through lists, maps and
// nested structs) to a distinct canary and returns each canary's path.
func fillCanaries(v reflect.Value, path string, canaries map[string]string) {
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
			fillCanaries(v.Field(i), p, canaries)
		}
	case reflect.String:
		c := fmt.Sprintf("canary%04dx", len(canaries))
		canaries[c] = path
		v.SetString(c)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fillCanaries(s.Index(0), path, canaries)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		if k.Kind() == reflect.String {
			k.SetString("mapkey") // map keys are names (topics, classes)
		}
		e := reflect.New(v.Type().Elem()).Elem()
		fillCanaries(e, path, canaries)
		m.SetMapIndex(k, e)
		v.Set(m)
	}
}

// TestShownPrintsNoSecret: every text setting set to a distinct canary,
// `config show`'s YAML and a log line of the whole configuration carry
// none but those of Public settings; Secret settings never print, however
// they are formatted.
func TestShownPrintsNoSecret(t *testing.T) {
	c := Default()
	canaries := map[string]string{}
	fillCanaries(reflect.ValueOf(&c).Elem(), "", canaries)
	paths := map[string]bool{}
	for _, p := range canaries {
		paths[p] = true
	}
	for _, p := range Public {
		if !paths[p] {
			t.Errorf("Public names %q, which is not a text setting", p)
		}
	}
	out, err := yaml.Marshal(Shown(c))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "s3_secret", c.Storage.S3.SecretKey, "transcribe_url", c.Transcribe.URL)
	printed := string(out) + fmt.Sprintf("%v %+v %#v %s", c.Storage.S3.SecretKey, c.Transcribe.URL, c.Alerts.Classifier.URL, c.Storage.S3.SecretKey) + logs.String()
	var leaked []string
	for canary, p := range canaries {
		if strings.Contains(printed, canary) && !slices.Contains(Public, p) {
			leaked = append(leaked, p)
		}
	}
	slices.Sort(leaked)
	if len(leaked) > 0 {
		t.Fatalf("printed though not public: %v", leaked)
	}
	// Shown leaves the configuration it was given alone.
	if c.Storage.S3.SecretKey.Reveal() == Redacted || c.Alerts.Sinks[0].Rooms[0] == Redacted {
		t.Fatal("Shown changed its argument")
	}
}
