package gossip

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// A peer that refuses a stream for its label (another --cluster.name)
// closes the connection without a word: memberlist's joiner only sees EOF.
// To tell the operator which name the peer has, every node answers a
// "hello" on its gossip TCP port with its cluster name and whether it
// gossips with a key. Both are public already: memberlist sends the label in
// clear in front of every packet, and whether packets are encrypted shows on
// the wire. The hello carries no secret and changes nothing.

// helloRequest starts a hello. Its first byte is none of memberlist's
// message types (0-13 and 244), so a stream starting with it is not
// memberlist's.
const helloRequest = "SHOAL-HELLO 1\n"

// helloTimeout bounds a hello, both ways.
const helloTimeout = 2 * time.Second

// maxHello bounds a hello answer.
const maxHello = 1024

// hello is a node's answer.
type hello struct {
	Cluster   string `json:"cluster"`
	Encrypted bool   `json:"encrypted"`
}

// helloTransport is memberlist's NetTransport, with the hello answered
// before streams reach memberlist.
type helloTransport struct {
	*memberlist.NetTransport
	hello   []byte
	streams chan net.Conn
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

var _ memberlist.NodeAwareTransport = (*helloTransport)(nil)

// newHelloTransport listens on host:port (port 0 picks one, retrying a
// port taken between TCP and UDP, as memberlist does) and answers hellos
// with h.
func newHelloTransport(host string, port int, h hello, logger *log.Logger) (*helloTransport, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	tries := 1
	if port == 0 {
		tries = 10
	}
	var nt *memberlist.NetTransport
	for range tries {
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: logger})
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	t := &helloTransport{NetTransport: nt, hello: append(b, '\n'), streams: make(chan net.Conn), done: make(chan struct{})}
	t.wg.Go(t.forward)
	return t, nil
}

// StreamCh returns the streams that are memberlist's.
func (t *helloTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown closes the listeners and waits for the streams in hand.
func (t *helloTransport) Shutdown() error {
	err := t.NetTransport.Shutdown()
	t.once.Do(func() { close(t.done) })
	t.wg.Wait()
	return err
}

// forward sorts incoming streams: a hello is answered here, anything else
// goes to memberlist unchanged (the peeked byte included).
func (t *helloTransport) forward() {
	for {
		select {
		case <-t.done:
			return
		case c := <-t.NetTransport.StreamCh():
			t.wg.Go(func() { t.route(c) })
		}
	}
}

func (t *helloTransport) route(c net.Conn) {
	r := bufio.NewReaderSize(c, len(helloRequest))
	_ = c.SetReadDeadline(time.Now().Add(helloTimeout))
	first, err := r.Peek(1)
	_ = c.SetReadDeadline(time.Time{})
	if err == nil && first[0] == helloRequest[0] {
		_ = c.SetDeadline(time.Now().Add(helloTimeout))
		if line, err := r.ReadString('\n'); err == nil && line == helloRequest {
			_, _ = c.Write(t.hello)
		}
		_ = c.Close()
		return
	}
	select {
	case t.streams <- peekedConn{Conn: c, r: r}:
	case <-t.done:
		_ = c.Close()
	}
}

// peekedConn reads what was peeked first.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// askHello asks the node at addr for its cluster name and whether it uses a
// key.
func askHello(addr string) (hello, error) {
	c, err := net.DialTimeout("tcp", addr, helloTimeout)
	if err != nil {
		return hello{}, err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(helloTimeout))
	if _, err := io.WriteString(c, helloRequest); err != nil {
		return hello{}, err
	}
	line, err := bufio.NewReader(io.LimitReader(c, maxHello)).ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			return hello{}, errors.New("closed the connection: not a shoal agent of this version")
		}
		return hello{}, err
	}
	var h hello
	if err := json.Unmarshal([]byte(line), &h); err != nil {
		return hello{}, fmt.Errorf("unreadable hello: %w", err)
	}
	return h, nil
}
