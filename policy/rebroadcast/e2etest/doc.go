// Package e2etest runs the rebroadcast stage on the whole live path: speaker
// bots in two Janus rooms of the test bed, the ingest stage recording both,
// the stage on the test bed's Kafka. Real time: run it under the shared
// lock (see testbed/test.sh).
package e2etest
