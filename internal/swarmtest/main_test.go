package swarmtest

import (
	"testing"

	"github.com/shoal-dev/shoal/internal/e2e"
)

func TestMain(m *testing.M) { e2e.VerifyTestMain(m) }
