package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of utime and stime in /proc/PID/stat (USER_HZ). It is
// 100 on every Linux architecture Go runs on; Go cannot ask sysconf without
// cgo, and the Prometheus procfs package assumes the same.
const userHZ = 100

// CPUTimes is the CPU time a process has used, from /proc/PID/stat.
type CPUTimes struct {
	User, System time.Duration
}

// Total is user plus system time.
func (c CPUTimes) Total() time.Duration { return c.User + c.System }

// ParseStat reads utime and stime from the contents of /proc/PID/stat.
// The command name (field 2) is in parentheses and may itself hold spaces
// and parentheses, so fields are counted from the last ')'.
func ParseStat(b []byte) (CPUTimes, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return CPUTimes{}, errors.New("parse /proc stat: no ')' after the command name")
	}
	// After the command: state (field 3), ..., utime (14), stime (15).
	f := strings.Fields(string(b[i+1:]))
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return CPUTimes{}, fmt.Errorf("parse /proc stat: %d fields after the command name, want at least %d", len(f), stime+1)
	}
	u, err := strconv.ParseUint(f[utime], 10, 64)
	if err != nil {
		return CPUTimes{}, fmt.Errorf("parse /proc stat utime %q: %w", f[utime], err)
	}
	s, err := strconv.ParseUint(f[stime], 10, 64)
	if err != nil {
		return CPUTimes{}, fmt.Errorf("parse /proc stat stime %q: %w", f[stime], err)
	}
	return CPUTimes{User: ticks(u), System: ticks(s)}, nil
}

func ticks(n uint64) time.Duration { return time.Duration(n) * time.Second / userHZ }

// ReadCPU reads the CPU time of process pid.
func ReadCPU(pid int) (CPUTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return CPUTimes{}, err
	}
	return ParseStat(b)
}

// Memory is a process' resident memory, from /proc/PID/status, in bytes.
type Memory struct {
	// RSS is the resident set size now (VmRSS).
	RSS uint64
	// HWM is the peak resident set size since the process started (VmHWM).
	HWM uint64
	// Anon is the anonymous part of RSS (RssAnon: heap, stacks), without
	// the pages of the binary and of other mapped files, which RSS counts
	// too; 0 on kernels before 4.5, which do not report it.
	Anon uint64
}

// ParseStatus reads VmRSS, VmHWM and RssAnon from the contents of
// /proc/PID/status.
func ParseStatus(b []byte) (Memory, error) {
	var m Memory
	var seenRSS, seenHWM bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != "VmRSS" && name != "VmHWM" && name != "RssAnon" {
			continue
		}
		v, err := parseKB(rest)
		if err != nil {
			return Memory{}, fmt.Errorf("parse /proc status %s: %w", name, err)
		}
		switch name {
		case "VmRSS":
			m.RSS, seenRSS = v, true
		case "VmHWM":
			m.HWM, seenHWM = v, true
		default:
			m.Anon = v
		}
	}
	if err := sc.Err(); err != nil {
		return Memory{}, err
	}
	if !seenRSS || !seenHWM {
		// A zombie has neither: the process has exited.
		return Memory{}, errors.New("parse /proc status: no VmRSS or VmHWM (has the process exited?)")
	}
	return m, nil
}

// parseKB parses "   1234 kB" into bytes.
func parseKB(s string) (uint64, error) {
	f := strings.Fields(s)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("want \"<n> kB\", got %q", strings.TrimSpace(s))
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, err
	}
	return n << 10, nil
}

// ReadMemory reads the resident memory of process pid.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	return ParseStatus(b)
}
