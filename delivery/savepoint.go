package delivery

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
)

// savepoint records, crash-safe, how far an endpoint acknowledged the queue
// and where the request in flight ends. It is two 32-byte slots written in
// turn, each with a sequence number and a checksum: a write torn by a crash
// spoils one slot and the other still holds the previous state, without a
// rename per request.
//
//	seq u64 | acked u64 | inflight u64 | crc32c u32 | 0 u32
type savepoint struct {
	f   *os.File
	seq uint64
}

const slotSize = 32

type position struct {
	acked    uint64 // everything before it was acknowledged
	inflight uint64 // the request being sent ends here (>= acked)
}

func openSavepoint(path string) (*savepoint, position, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, position{}, err
	}
	sp := &savepoint{f: f}
	var best position
	var buf [2 * slotSize]byte
	n, _ := f.ReadAt(buf[:], 0)
	for i := 0; i+slotSize <= n; i += slotSize {
		slot := buf[i : i+slotSize]
		if crc32.Checksum(slot[:24], castagnoli) != binary.LittleEndian.Uint32(slot[24:]) {
			continue
		}
		seq := binary.LittleEndian.Uint64(slot[0:])
		if seq == 0 || seq < sp.seq {
			continue
		}
		sp.seq = seq
		best = position{acked: binary.LittleEndian.Uint64(slot[8:]), inflight: binary.LittleEndian.Uint64(slot[16:])}
	}
	return sp, best, nil
}

// save writes p to the older slot and fdatasyncs it.
func (sp *savepoint) save(p position) error {
	sp.seq++
	var slot [slotSize]byte
	binary.LittleEndian.PutUint64(slot[0:], sp.seq)
	binary.LittleEndian.PutUint64(slot[8:], p.acked)
	binary.LittleEndian.PutUint64(slot[16:], p.inflight)
	binary.LittleEndian.PutUint32(slot[24:], crc32.Checksum(slot[:24], castagnoli))
	if _, err := sp.f.WriteAt(slot[:], int64(sp.seq%2)*slotSize); err != nil {
		return fmt.Errorf("write savepoint %s: %w", sp.f.Name(), err)
	}
	if err := fdatasync(sp.f); err != nil {
		return fmt.Errorf("sync savepoint %s: %w", sp.f.Name(), err)
	}
	return nil
}

func (sp *savepoint) close() error { return sp.f.Close() }
