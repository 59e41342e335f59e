package bench

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/e2e"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		e2e.RemoveBinary()
		os.Exit(code)
	}))
}
