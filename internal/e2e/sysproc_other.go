//go:build unix && !linux

package e2e

import "syscall"

// sysProcAttr puts the child in its own process group, so stop and kill
// signal everything it spawned.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
