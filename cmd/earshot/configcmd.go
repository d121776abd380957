package main

import (
	"fmt"
	"io"

	"gopkg.in/yaml.v3"

	"github.com/earshot/earshot/config"
)

// printConfig writes the effective configuration as YAML with secret
// values replaced, so it can be pasted into a bug report.
func printConfig(w io.Writer, cfg config.Config) error {
	if cfg.Storage.S3.SecretKey != "" {
		cfg.Storage.S3.SecretKey = "<redacted>"
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("config show: %w", err)
	}
	_, err = w.Write(b)
	return err
}
