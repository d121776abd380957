package main

import (
	"fmt"
	"io"

	"gopkg.in/yaml.v3"

	"github.com/earshot/earshot/internal/config"
)

// printConfig writes the effective configuration as YAML with secrets and
// raw identities redacted (config.Shown), so it can be pasted into a bug
// report.
func printConfig(w io.Writer, cfg config.Config) error {
	b, err := yaml.Marshal(config.Shown(cfg))
	if err != nil {
		return fmt.Errorf("config show: %w", err)
	}
	_, err = w.Write(b)
	return err
}
