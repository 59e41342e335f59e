package flagext

import (
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
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
		{[]string{"--a.limit=-3"}, `--a.limit must be a non-negative integer, got "-3"`},
		{[]string{"--a.limit=many"}, `--a.limit must be a non-negative integer, got "many"`},
		{[]string{"--a.size=64"}, `--a.size must be a size such as 64MB, 512KB or 0, got "64"`},
		{[]string{"--a.size=-1MB"}, `--a.size must be a size such as 64MB, 512KB or 0, got "-1MB"`},
		{nil, ""},
	} {
		app := kingpin.New("t", "")
		n, f, d, s, b := 3, 1.5, time.Second, "def", false
		lim, size := uint(7), 2*units.MiB
		Uint(app, "a.limit", "limit", &lim)
		Bytes(app, "a.size", "size", &size)
		Int(app, "a.count", "count", &n)
		Float(app, "a.share", "share", &f)
		Duration(app, "a.wait", "wait", &d)
		String(app, "a.name", "name", &s)
		Bool(app, "a.on", "on", &b)
		_, err := app.Parse(tc.args)
		if tc.want == "" {
			require.NoError(t, err)
			require.Equal(t, []any{3, 1.5, time.Second, "def", false, uint(7), 2 * units.MiB}, []any{n, f, d, s, b, lim, size}, "defaults are the values the pointers held")
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

func TestBytesAndUint(t *testing.T) {
	for _, tc := range []struct {
		args []string
		size units.Base2Bytes
		lim  uint
	}{
		{nil, 0, 0},
		{[]string{"--a.size=64MB", "--a.limit=200000"}, 64 * units.MiB, 200000},
		{[]string{"--a.size=512KiB"}, 512 * units.KiB, 0},
		{[]string{"--a.size=1GB", "--a.limit=0"}, units.GiB, 0},
	} {
		app := kingpin.New("t", "")
		var size units.Base2Bytes
		var lim uint
		Bytes(app, "a.size", "size", &size)
		Uint(app, "a.limit", "limit", &lim)
		_, err := app.Parse(tc.args)
		require.NoError(t, err, tc.args)
		require.Equal(t, tc.size, size, tc.args)
		require.Equal(t, tc.lim, lim, tc.args)
	}
	// The default is written so that it parses back (kingpin parses it).
	app := kingpin.New("t", "")
	size := 64 * units.MiB
	Bytes(app, "a.size", "size", &size)
	require.Equal(t, "64MiB", app.GetFlag("a.size").Model().Default[0])
}
