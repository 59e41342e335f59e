//go:build !linux

package attacktest

import (
	"errors"
	"net"
)

// Net is a network namespace; only Linux has them.
type Net struct {
	Name           string
	HostIP, PeerIP string
}

var errNoNetns = errors.New("network namespaces need Linux")

// NewNet fails: network namespaces need Linux.
func NewNet() (*Net, error) { return nil, errNoNetns }

// Close does nothing.
func (n *Net) Close() error { return nil }

// Do fails.
func (n *Net) Do(func() error) error { return errNoNetns }

// Listen fails.
func (n *Net) Listen(int) (net.Listener, error) { return nil, errNoNetns }
