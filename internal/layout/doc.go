// Package layout holds the tests that keep the repository's shape: what
// sits at the root, which package may import which, and that only bus
// talks to Kafka. It has no code of its own.
package layout
