//go:build unix

package e2e

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
)

// reservePorts binds a TCP and a UDP socket to 127.0.0.1:port for each port,
// without listening, so that connections to the port are refused as if
// nothing were there, but the kernel does not hand the port out as the
// source port of an outgoing connection (ephemeral ports skip bound ones).
// The returned function releases them; calling it again does nothing (a
// second close of a descriptor number would close whatever socket of the
// test process has been given that number since, e.g. another test's
// listener).
func reservePorts(ports []int) (release func(), err error) {
	var fds []int
	release = sync.OnceFunc(func() {
		for _, fd := range fds {
			_ = syscall.Close(fd)
		}
	})
	for _, port := range ports {
		for _, typ := range []int{syscall.SOCK_STREAM, syscall.SOCK_DGRAM} {
			fd, err := syscall.Socket(syscall.AF_INET, typ|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				release()
				return nil, fmt.Errorf("create socket: %w", err)
			}
			fds = append(fds, fd)
			err = syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
			if errors.Is(err, syscall.EADDRINUSE) {
				// Taken already, by a connection or by a process that did not
				// stop; the component's restart will say which.
				continue
			}
			if err != nil {
				release()
				return nil, fmt.Errorf("bind 127.0.0.1:%d: %w", port, err)
			}
		}
	}
	return release, nil
}
