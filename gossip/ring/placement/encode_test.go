package placement

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEncodingRoundTrip(t *testing.T) {
	p := newPlan(0xabc, []Override{
		{Key: 9, Member: "b", Reason: ReasonBalance},
		{Key: 3, Member: "a", Reason: ReasonOversized},
		{Key: 5, Member: "b", Reason: ReasonDisplaced},
	})
	enc, err := p.MarshalBinary()
	require.NoError(t, err)
	// version, ring digest, 2 names of 1 byte, 3 overrides of 9 bytes.
	require.Len(t, enc, 1+8+1+2*2+1+3*9)
	d, err := Decode(enc)
	require.NoError(t, err)
	require.Equal(t, p.Digest(), d.Digest())
	require.Equal(t, []Override{
		{Key: 3, Member: "a", Reason: ReasonOversized},
		{Key: 5, Member: "b", Reason: ReasonDisplaced},
		{Key: 9, Member: "b", Reason: ReasonBalance},
	}, d.Overrides())
	o, ok := d.Lookup(5)
	require.True(t, ok)
	require.Equal(t, "b", o.Member)
	_, ok = d.Lookup(4)
	require.False(t, ok)

	// The digest covers the ring digest and every field of every override.
	for _, q := range []*Plan{
		newPlan(0xabd, p.Overrides()),
		newPlan(0xabc, []Override{{Key: 3, Member: "a", Reason: ReasonOversized}, {Key: 5, Member: "b", Reason: ReasonDisplaced}}),
		newPlan(0xabc, []Override{{Key: 3, Member: "a", Reason: ReasonBalance}, {Key: 5, Member: "b", Reason: ReasonDisplaced}, {Key: 9, Member: "b", Reason: ReasonBalance}}),
		newPlan(0xabc, []Override{{Key: 3, Member: "a", Reason: ReasonOversized}, {Key: 5, Member: "a", Reason: ReasonDisplaced}, {Key: 9, Member: "b", Reason: ReasonBalance}}),
	} {
		require.NotEqual(t, p.Digest(), q.Digest())
	}

	// The empty plan is 11 bytes and decodes.
	e, err := Decode(empty.enc())
	require.NoError(t, err)
	require.Equal(t, 11, e.Size())
	require.Equal(t, empty.Digest(), e.Digest())
}

func TestDecodeRejects(t *testing.T) {
	good := newPlan(1, []Override{{Key: 3, Member: "a", Reason: ReasonBalance}, {Key: 5, Member: "b", Reason: ReasonBalance}}).enc()
	head := func(names ...string) []byte {
		b := []byte{encodingVersion}
		b = binary.LittleEndian.AppendUint64(b, 1)
		b = binary.AppendUvarint(b, uint64(len(names)))
		for _, n := range names {
			b = binary.AppendUvarint(b, uint64(len(n)))
			b = append(b, n...)
		}
		return b
	}
	entry := func(b []byte, key uint64, v uint64) []byte {
		b = binary.LittleEndian.AppendUint64(b, key)
		return binary.AppendUvarint(b, v)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		err  string
	}{
		{"empty", nil, "truncated"},
		{"version", append([]byte{7}, good[1:]...), "format version must be 1, got 7"},
		{"truncated", good[:len(good)-1], "overrides: count 2 exceeds what 17 bytes can hold"},
		{"truncated name", head("abc")[:13], "truncated"},
		{"trailing", append(append([]byte{}, good...), 0), "1 trailing bytes"},
		{"huge member count", append(head()[:9], 0xff, 0xff, 0xff, 0x7f), "members: count 268435455 exceeds what 0 bytes can hold"},
		{"empty name", append(head(""), 0), "member 0: name length must be in [1, 1024], got 0"},
		{"unsorted names", append(head("b", "a"), 0), `member 1: names must be sorted and unique, got "a" after "b"`},
		{"duplicate names", append(head("a", "a"), 0), `names must be sorted and unique`},
		{"huge override count", append(head("a"), 0xff, 0xff, 0x7f), "overrides: count"},
		{"keys not ascending", entry(entry(append(head("a"), 2), 5, 1), 5, 1), "override 1: keys must be strictly ascending, got 0x5 after 0x5"},
		{"member index", entry(append(head("a"), 1), 5, 1<<2|1), "override 0 (key 0x5): member index must be below 1, got 1"},
		{"reason", entry(append(head("a"), 1), 5, 0), "override 0 (key 0x5): reason must be 1-3, got 0"},
		{"unreferenced member", entry(append(head("a", "b"), 1), 5, 1), `member "b": listed but not referenced`},
		{"overlong varint", append(head("a"), 0x81, 0x00, 5, 0, 0, 0, 0, 0, 0, 0, 1), "not in canonical form"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.b)
			require.ErrorIs(t, err, ErrEncoding)
			require.ErrorContains(t, err, tc.err)
		})
	}
}

// FuzzDecode: Decode never panics, and what it accepts re-encodes to the
// same bytes (the encoding is canonical, so the digest is the sender's).
func FuzzDecode(f *testing.F) {
	f.Add(empty.enc())
	f.Add(newPlan(1, []Override{{Key: 3, Member: "a", Reason: ReasonBalance}, {Key: 5, Member: "bb", Reason: ReasonDisplaced}}).enc())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := p.MarshalBinary()
		require.NoError(t, err)
		require.Equal(t, b, enc)
		for _, o := range p.Overrides() {
			got, ok := p.Lookup(o.Key)
			require.True(t, ok)
			require.Equal(t, o, got)
		}
	})
}
