package delivery

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The child writes records and savepoints as fast as it can until killed.
// Each record's payload is its sequence number; the savepoint records the
// offset after the last record it wrote.
func TestChildWriter(t *testing.T) {
	dir := os.Getenv("SHOAL_DELIVERY_KILL_DIR")
	if dir == "" {
		t.Skip("only runs as the child of TestKillDuringWrites")
	}
	q, err := openQueue(dir, 64<<10, 0)
	if err != nil {
		t.Fatal(err)
	}
	sp, pos, err := openSavepoint(dir + "/savepoint")
	if err != nil {
		t.Fatal(err)
	}
	var seq uint64
	_ = pos
	for {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], seq)
		if err := q.appendPayload(b[:], 1, int64(seq)); err != nil {
			t.Fatal(err)
		}
		seq++
		if seq%7 == 0 {
			if err := sp.save(position{acked: q.end(), inflight: q.end()}); err != nil {
				t.Fatal(err)
			}
		}
		if seq%50 == 0 {
			_ = q.sync()
		}
	}
}

// TestKillDuringWrites kills a writer with SIGKILL at random instants, 20
// times, and checks after each kill that the queue opens, every record in
// it reads back with a valid checksum, and the savepoint is valid and not
// past the end of the queue.
func TestKillDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 20 processes")
	}
	dir := t.TempDir()
	for i := range 20 {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestChildWriter$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SHOAL_DELIVERY_KILL_DIR="+dir)
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(20+rand.IntN(80)) * time.Millisecond)
		require.NoError(t, cmd.Process.Kill())
		_ = cmd.Wait()

		q, err := openQueue(dir, 64<<10, 0)
		require.NoError(t, err, "kill %d", i)
		sp, pos, err := openSavepoint(dir + "/savepoint")
		require.NoError(t, err)
		require.LessOrEqual(t, pos.acked, q.end(), "kill %d: the savepoint is within the queue", i)
		r := &reader{q: q}
		n := 0
		for {
			p, _, _, next, wait, err := r.next()
			require.NoError(t, err)
			if wait != nil {
				break
			}
			require.Len(t, p, 8)
			r.off = next
			n++
		}
		require.Equal(t, q.end(), r.off, "kill %d: every record up to the end reads back", i)
		r.close()
		require.NoError(t, sp.close())
		require.NoError(t, q.close())
		t.Logf("kill %d: %d records, %d bytes", i, n, r.off)
	}
}
