package e2e

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMembersActive(t *testing.T) {
	m := Members{Members: []Member{
		{Name: "c", State: "active"}, {Name: "a", State: "active"},
		{Name: "b", State: "leaving"}, {Name: "d", State: "joining"},
	}}
	require.Equal(t, []string{"a", "c"}, m.Active())
	require.Empty(t, Members{}.Active())
}
