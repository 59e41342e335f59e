package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPromDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{2 * time.Second, "2s"},
		{time.Minute, "1m0s"},
		{2500 * time.Millisecond, "2500ms"},
		{500 * time.Millisecond, "500ms"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			require.Equal(t, tt.want, promDuration(tt.d))
		})
	}
}
