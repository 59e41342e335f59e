package scrape

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The stdlib HTTP client used by scrape loops keeps idle keep-alive
		// connections; their reader and writer goroutines end with the
		// connection, after the test that used it.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}
