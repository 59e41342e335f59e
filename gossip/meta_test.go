package gossip

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []Meta{
		{State: StateJoining},
		{State: StateActive, HTTPAddr: "10.0.0.1:9090", Version: "0.1.0", Digest: 0xdeadbeefcafef00d, Started: time.UnixMilli(1700000000123), Weight: 2.5},
		{State: StateLeaving, Digest: 1},
	} {
		b, err := encodeMeta(m)
		require.NoError(t, err)
		got, err := decodeMeta(b)
		require.NoError(t, err)
		require.Equal(t, m.State, got.State)
		require.Equal(t, m.HTTPAddr, got.HTTPAddr)
		require.Equal(t, m.Digest, got.Digest)
		require.True(t, m.Started.Equal(got.Started))
		require.Equal(t, m.Weight, got.Weight)
	}
}

func TestMetaDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{``, "empty"},
		{`{`, "decode node metadata"},
		{`{"v":0,"s":"active"}`, "version must be >= 1, got 0"},
		{`{"v":1,"s":"bogus"}`, `state must be joining, active or leaving, got "bogus"`},
		{`{"v":1,"s":"active","d":"xyz"}`, `digest must be hexadecimal, got "xyz"`},
		{`{"v":1,"s":"active","w":-1}`, "weight must be in [0, 100], got -1"},
		{`{"v":1,"s":"active","w":1e9}`, "weight must be in"},
		{`{"v":1,"s":"active","h":"` + strings.Repeat("x", 600) + `"}`, "limit is 512"},
	} {
		t.Run(tc.err, func(t *testing.T) {
			_, err := decodeMeta([]byte(tc.in))
			require.ErrorContains(t, err, tc.err)
		})
	}
	// Unknown fields are accepted: a newer agent may add some.
	m, err := decodeMeta([]byte(`{"v":2,"s":"active","future":true}`))
	require.NoError(t, err)
	require.Equal(t, StateActive, m.State)
}

func TestMetaEncodeTooLarge(t *testing.T) {
	_, err := encodeMeta(Meta{State: StateActive, HTTPAddr: strings.Repeat("h", 600)})
	require.ErrorContains(t, err, "memberlist allows 512")
}

// FuzzDecodeMeta: metadata comes from the network; decoding never panics and
// whatever decodes re-encodes to something that decodes to the same value.
func FuzzDecodeMeta(f *testing.F) {
	f.Add([]byte(`{"v":1,"s":"active","h":"127.0.0.1:9090","ver":"0.1.0","d":"ff","t":1700000000000,"w":1}`))
	f.Add([]byte(`{"v":1,"s":"leaving"}`))
	f.Add([]byte(`{"v":1,"s":"joining","w":1e308}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		enc, err := encodeMeta(m)
		if err != nil {
			// Only size can fail, and only for inputs near the limit.
			require.Contains(t, err.Error(), "memberlist allows")
			return
		}
		m2, err := decodeMeta(enc)
		require.NoError(t, err)
		require.Equal(t, m.State, m2.State)
		require.Equal(t, m.HTTPAddr, m2.HTTPAddr)
		require.Equal(t, m.Version, m2.Version)
		require.Equal(t, m.Digest, m2.Digest)
		require.Equal(t, m.Weight, m2.Weight)
		require.Equal(t, m.Started.UnixMilli(), m2.Started.UnixMilli())
	})
}

func TestYoungerYields(t *testing.T) {
	old, young := time.UnixMilli(1000), time.UnixMilli(2000)
	require.True(t, youngerYields(young, Meta{Started: old}, "a:1", "b:1"), "younger node yields")
	require.False(t, youngerYields(old, Meta{Started: young}, "a:1", "b:1"), "older node stays")
	require.False(t, youngerYields(old, Meta{}, "a:1", "b:1"), "unknown age: stay")
	require.True(t, youngerYields(old, Meta{Started: old}, "b:1", "a:1"), "tie: larger address yields")
	require.False(t, youngerYields(old, Meta{Started: old}, "a:1", "b:1"))
}
