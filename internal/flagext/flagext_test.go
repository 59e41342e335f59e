package flagext

import (
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/stretchr/testify/require"
)

func TestFlagsNameThemselves(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--a.count=x"}, `--a.count must be an integer, got "x"`},
		{[]string{"--a.share=heavy"}, `--a.share must be a number, got "heavy"`},
		{[]string{"--a.wait=soon"}, `--a.wait must be a non-negative duration such as 500ms, 15s or 1m, got "soon"`},
		{[]string{"--a.wait=-1s"}, `--a.wait must be a non-negative duration`},
		{nil, ""},
	} {
		app := kingpin.New("t", "")
		n, f, d, s, b := 3, 1.5, time.Second, "def", false
		Int(app, "a.count", "count", &n)
		Float(app, "a.share", "share", &f)
		Duration(app, "a.wait", "wait", &d)
		String(app, "a.name", "name", &s)
		Bool(app, "a.on", "on", &b)
		_, err := app.Parse(tc.args)
		if tc.want == "" {
			require.NoError(t, err)
			require.Equal(t, []any{3, 1.5, time.Second, "def", false}, []any{n, f, d, s, b}, "defaults are the values the pointers held")
			continue
		}
		require.ErrorContains(t, err, tc.want)
	}
}

func TestEnvTwin(t *testing.T) {
	require.Equal(t, "SHOAL_CLUSTER_NODE_NAME", EnvName("cluster.node-name"))
	t.Setenv("SHOAL_A_WAIT", "2m")
	app := kingpin.New("t", "")
	d := time.Second
	Duration(app, "a.wait", "wait", &d)
	_, err := app.Parse(nil)
	require.NoError(t, err)
	require.Equal(t, 2*time.Minute, d)
}
