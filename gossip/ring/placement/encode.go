package placement

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// The encoding carries only what differs from rendezvous, so its size grows
// with the number of overrides, not of targets:
//
//	byte     format version (encodingVersion)
//	8 bytes  ring digest, little endian
//	uvarint  number of member names M, then M × (uvarint length, name),
//	         sorted, unique, each referenced by an override
//	uvarint  number of overrides K, then K × (8 bytes key little endian,
//	         uvarint member index << 2 | reason), keys strictly ascending
//
// It is canonical: a plan has exactly one encoding, whose xxhash is its
// Digest. About 9 bytes per override plus the names of the members that
// receive them.
const encodingVersion = 1

// maxNameLen bounds a member name in a decoded plan; memberlist node names
// are far shorter.
const maxNameLen = 1024

// ErrEncoding is wrapped by every Decode error.
var ErrEncoding = errors.New("invalid plan encoding")

// MarshalBinary returns the plan's canonical encoding.
func (p *Plan) MarshalBinary() ([]byte, error) { return slices.Clone(p.enc()), nil }

func (p *Plan) appendBinary(b []byte) []byte {
	b = append(b, encodingVersion)
	b = binary.LittleEndian.AppendUint64(b, p.ringDigest)
	b = binary.AppendUvarint(b, uint64(len(p.members)))
	for _, m := range p.members {
		b = binary.AppendUvarint(b, uint64(len(m)))
		b = append(b, m...)
	}
	b = binary.AppendUvarint(b, uint64(len(p.overrides)))
	for _, o := range p.overrides {
		b = binary.LittleEndian.AppendUint64(b, o.key)
		b = binary.AppendUvarint(b, uint64(o.member)<<2|uint64(o.reason))
	}
	return b
}

// Decode parses a plan encoded by MarshalBinary, as received from a peer.
// It accepts the canonical encoding only, so that the decoded plan has the
// same Digest as the one that was sent.
func Decode(b []byte) (*Plan, error) {
	p, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncoding, err)
	}
	return p, nil
}

func decode(b []byte) (*Plan, error) {
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v != encodingVersion {
		return nil, fmt.Errorf("format version must be %d, got %d", encodingVersion, v)
	}
	p := &Plan{ringDigest: d.uint64()}
	// Each name takes at least 2 bytes and each override at least 9: bound the
	// counts by what is left so a corrupt count cannot allocate much.
	nm := d.count("members", 2)
	for i := 0; i < nm && d.err == nil; i++ {
		n := d.uvarint()
		if d.err == nil && (n == 0 || n > maxNameLen) {
			return nil, fmt.Errorf("member %d: name length must be in [1, %d], got %d", i, maxNameLen, n)
		}
		name := string(d.bytes(int(n)))
		if d.err == nil && i > 0 && name <= p.members[i-1] {
			return nil, fmt.Errorf("member %d: names must be sorted and unique, got %q after %q", i, name, p.members[i-1])
		}
		p.members = append(p.members, name)
	}
	no := d.count("overrides", 9)
	used := make([]bool, len(p.members))
	for i := 0; i < no && d.err == nil; i++ {
		key := d.uint64()
		v := d.uvarint()
		if d.err != nil {
			break
		}
		if i > 0 && key <= p.overrides[i-1].key {
			return nil, fmt.Errorf("override %d: keys must be strictly ascending, got %#x after %#x", i, key, p.overrides[i-1].key)
		}
		m, why := v>>2, Reason(v&3)
		if m >= uint64(len(p.members)) {
			return nil, fmt.Errorf("override %d (key %#x): member index must be below %d, got %d", i, key, len(p.members), m)
		}
		if why == 0 {
			return nil, fmt.Errorf("override %d (key %#x): reason must be 1-3, got 0", i, key)
		}
		used[m] = true
		p.overrides = append(p.overrides, override{key: key, member: int32(m), reason: why})
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) > 0 {
		return nil, fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if i := slices.Index(used, false); i >= 0 {
		return nil, fmt.Errorf("member %q: listed but not referenced by any override", p.members[i])
	}
	p.seal()
	if string(p.encoded) != string(b) {
		// Overlong varints: the same plan, but not its canonical bytes.
		return nil, errors.New("not in canonical form")
	}
	return p, nil
}

// decoder reads from b and keeps the first error.
type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated")

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uint64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil || len(d.b) < n {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// count reads a count of items of at least minSize bytes each.
func (d *decoder) count(what string, minSize int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/minSize) {
		d.err = fmt.Errorf("%s: count %d exceeds what %d bytes can hold", what, n, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errShort
	}
}
