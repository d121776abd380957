package bus

// Integration tests on the real Kafka started by testbed/kafka.sh: skipped
// without EARSHOT_TESTBED=1, failed with it when Kafka is not running.

import (
	"testing"
)

// TestKafkaProduceConsumeCommit: kafka-go produces with acks=all and consumes
// through a consumer group with commits on the real broker.
func TestKafkaProduceConsumeCommit(t *testing.T) {
	t.Parallel()
	scenarioProduceConsumeCommit(t, testKafka(t))
}

// TestKafkaRestartMidStream: a consumer restarted mid-stream sees every
// record at least once and, after dedupe, exactly once, resuming at the
// oldest unfinished record of each partition.
func TestKafkaRestartMidStream(t *testing.T) {
	t.Parallel()
	scenarioRestartMidStream(t, testKafka(t), 1000)
}

func TestKafkaEnsureTopics(t *testing.T) {
	t.Parallel()
	scenarioEnsureTopics(t, testKafka(t))
}

// TestKafkaRebalance: a second member joining mid-stream gets partitions and
// nothing is lost across the rebalance.
func TestKafkaRebalance(t *testing.T) {
	t.Parallel()
	scenarioRebalance(t, testKafka(t))
}
