//go:build unix && !linux

package testenv

import "syscall"

// sysProcAttr puts the child in its own process group, so stop can signal
// everything it spawned.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
