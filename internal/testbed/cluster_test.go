package testbed

import (
	"slices"
	"testing"
)

func TestParseCluster(t *testing.T) {
	three := map[string]string{
		"KAFKA_CLUSTER_BROKERS":     "127.0.0.1:19111,127.0.0.1:19112,127.0.0.1:19113",
		"KAFKA_CLUSTER_NODE_1":      "127.0.0.1:19111",
		"KAFKA_CLUSTER_NODE_2":      "127.0.0.1:19112",
		"KAFKA_CLUSTER_NODE_3":      "127.0.0.1:19113",
		"KAFKA_BROKERS":             "127.0.0.1:19111,127.0.0.1:19112,127.0.0.1:19113",
		"KAFKA_SECURITY":            "SASL_SSL",
		"KAFKA_CA_FILE":             "/state/kafka-tls/ca.pem",
		"KAFKA_ADMIN_USER":          "admin",
		"KAFKA_ADMIN_PASSWORD":      "pw-admin",
		"KAFKA_USER_TRANSCRIBE":     "earshot-transcribe",
		"KAFKA_PASSWORD_TRANSCRIBE": "pw-transcribe",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range three {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr bool
		nodes   int
	}{
		{"three nodes", three, false, 3},
		{"no brokers", with("KAFKA_CLUSTER_BROKERS", ""), true, 0},
		{"no nodes", map[string]string{"KAFKA_CLUSTER_BROKERS": "127.0.0.1:1", "KAFKA_BROKERS": "127.0.0.1:1", "KAFKA_CA_FILE": "/ca.pem",
			"KAFKA_ADMIN_USER": "admin", "KAFKA_ADMIN_PASSWORD": "pw"}, true, 0},
		{"plaintext (no CA)", with("KAFKA_CA_FILE", ""), true, 0},
		{"no admin password", with("KAFKA_ADMIN_PASSWORD", ""), true, 0},
		{"stage user without password", with("KAFKA_PASSWORD_TRANSCRIBE", ""), true, 0},
		{"client brokers differ", with("KAFKA_BROKERS", "127.0.0.1:19092"), true, 0},
		{"node not among brokers", with("KAFKA_CLUSTER_NODE_2", "127.0.0.1:9"), true, 0},
		{"node id not a number", with("KAFKA_CLUSTER_NODE_x", "127.0.0.1:19111"), true, 0},
		{"other keys ignored", with("KAFKA_OTHER", "x"), false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseCluster(tc.env)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseCluster: err %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if c.Endpoint.CAFile == "" || c.Endpoint.AdminPassword != "pw-admin" || c.Endpoint.Users["transcribe"] != [2]string{"earshot-transcribe", "pw-transcribe"} {
				t.Errorf("endpoint %+v lacks the CA, the admin's or a stage's login", c.Endpoint)
			}
			if !slices.Equal(c.Endpoint.Brokers, c.Brokers) {
				t.Errorf("endpoint brokers %v, want the cluster's %v", c.Endpoint.Brokers, c.Brokers)
			}
			if len(c.Nodes) != tc.nodes {
				t.Errorf("%d nodes, want %d", len(c.Nodes), tc.nodes)
			}
			for n, addr := range c.Nodes {
				if !slices.Contains(c.Brokers, addr) {
					t.Errorf("node %d at %s not among brokers %v", n, addr, c.Brokers)
				}
				if got, ok := c.Node(addr); !ok || got != n {
					t.Errorf("Node(%s) = %d, %v; want %d", addr, got, ok, n)
				}
			}
			if _, ok := c.Node("127.0.0.1:1"); ok {
				t.Error("Node of an unknown address reports a node")
			}
		})
	}
}
