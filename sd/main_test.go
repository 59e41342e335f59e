package sd

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Keep-alive connections of the Consul API clients end after the test
		// that used them closes its idle connections.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		// Prometheus' Consul SD retries its datacenter lookup with an
		// uninterruptible time.Sleep(15s), so with Consul unreachable its
		// goroutine outlives the cancelled discovery manager by up to 15s.
		goleak.IgnoreAnyFunction("github.com/prometheus/prometheus/discovery/consul.(*Discovery).initialize"),
	)
}
