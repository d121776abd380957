package testbed

import (
	"net"
	"testing"
)

// FreePort returns a loopback TCP port nothing listens on now, for a test
// that must start (or restart) a server on a port it names in advance.
// Another process could take it in between; tests using it accept that.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
