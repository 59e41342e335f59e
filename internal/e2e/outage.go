package e2e

import (
	"fmt"
)

// The ports of a stopped component are free for anyone, and the kernel hands
// free ports in its ephemeral range to outgoing connections: under load, a
// restart on the same port then fails with "address already in use".
// StopConsul and StopReceiver hold the ports while the component is down,
// so that it can come back; connections to them are refused meanwhile, as
// when nothing listens.

// StopConsul stops Consul and holds its ports until StartConsul.
func (e *Env) StopConsul() error {
	if err := e.Consul.Stop(); err != nil {
		return err
	}
	var err error
	e.holdConsul, err = e.hold(e.Consul.Ports)
	return err
}

// StartConsul releases Consul's ports and starts it again.
func (e *Env) StartConsul() error {
	release(&e.holdConsul)
	return e.Consul.Start()
}

// StopReceiver stops the receiver and holds its port until StartReceiver.
func (e *Env) StopReceiver() error {
	if err := e.Receiver.Stop(); err != nil {
		return err
	}
	var err error
	e.holdReceiver, err = e.hold([]int{e.Receiver.Port})
	return err
}

// StartReceiver releases the receiver's port and starts it again.
func (e *Env) StartReceiver() error {
	release(&e.holdReceiver)
	return e.Receiver.Start()
}

func (e *Env) hold(ports []int) (func(), error) {
	rel, err := reservePorts(ports)
	if err != nil {
		return nil, fmt.Errorf("hold ports %v: %w", ports, err)
	}
	e.Group.OnClose(func() error { rel(); return nil }) // rel closes once, whoever calls it first
	return rel, nil
}

func release(f *func()) {
	if *f != nil {
		(*f)()
		*f = nil
	}
}
