package bus

import (
	"testing"

	"github.com/earshot/earshot/internal/testbed"
)

// testKafka is the test bed's broker as its admin super user (what
// bustest.Kafka gives other packages; bus cannot import bustest).
func testKafka(tb testing.TB) Cluster {
	tb.Helper()
	return testCluster(tb, testbed.KafkaServer(tb))
}

func testCluster(tb testing.TB, e testbed.KafkaEndpoint) Cluster {
	tb.Helper()
	c := Plain(e.Brokers...)
	if e.CAFile == "" {
		return c
	}
	t, err := LoadTLS(e.CAFile, "", "", "")
	if err != nil {
		tb.Fatal(err)
	}
	c.TLS = t
	return c.As(e.AdminUser, e.AdminPassword)
}
