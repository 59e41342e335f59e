//go:build linux

package e2e

import "syscall"

// sysProcAttr puts the child in its own process group, so stop and kill
// signal everything it spawned, and asks the kernel to kill it if the test
// binary dies without running cleanups (a -timeout panic, SIGKILL).
// Pdeathsig fires when the thread that started the child exits; Go only
// retires threads of goroutines that exit while locked to them, which
// nothing here does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
