package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EnvName is the environment variable for a key path.
func EnvName(key string) string {
	return "EARSHOT_" + strings.ToUpper(strings.NewReplacer(".", "_").Replace(key))
}

// Keys lists every settable key path, sorted (for docs and --help).
func Keys() []string {
	var keys []string
	walk(reflect.TypeOf(Config{}), "", func(path string, _ []int) { keys = append(keys, path) })
	sort.Strings(keys)
	return keys
}

// Set assigns a value given as text to the key path ("kafka.brokers").
// Lists are comma-separated; durations use Go syntax ("5ms", "30s").
func Set(cfg *Config, key, value string) error {
	var idx []int
	walk(reflect.TypeOf(*cfg), "", func(path string, i []int) {
		if path == key {
			idx = i
		}
	})
	if idx == nil {
		return fmt.Errorf("config: unknown key %q (known keys: earshot config keys)", key)
	}
	f := reflect.ValueOf(cfg).Elem().FieldByIndex(idx)
	if err := setText(f, value); err != nil {
		return fmt.Errorf("config: %s (%s): %w", key, EnvName(key), err)
	}
	return nil
}

func applyEnv(cfg *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "EARSHOT_") {
			env[k] = v
		}
	}
	for _, key := range Keys() {
		if v, ok := env[EnvName(key)]; ok {
			if err := Set(cfg, key, v); err != nil {
				return err
			}
		}
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

// walk calls fn for every leaf field of t with its dotted YAML path.
func walk(t reflect.Type, prefix string, fn func(path string, index []int)) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		if sf.Type.Kind() == reflect.Struct && sf.Type != durationType {
			walk(sf.Type, path, func(p string, idx []int) { fn(p, append([]int{i}, idx...)) })
			continue
		}
		fn(path, []int{i})
	}
}

func setText(f reflect.Value, s string) error {
	s = strings.TrimSpace(s)
	switch {
	case f.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration like 5ms or 30s", s)
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(s)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		f.SetBool(b)
	case f.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		f.SetInt(int64(n))
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		var list []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
		f.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("cannot set a %s from text", f.Type())
	}
	return nil
}
