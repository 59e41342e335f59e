package attacktest

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// AttackerOptions describe an attacker: what it claims to be.
type AttackerOptions struct {
	// Name is its memberlist node name.
	Name string
	// Key is the gossip key it encrypts with; nil: none.
	Key []byte
	// Meta is the node metadata it advertises, written by hand.
	Meta []byte
	// Cluster is memberlist's label, shoal's --cluster.name: public, since
	// memberlist sends it in clear in front of every packet.
	Cluster string
	// Advertise, if set, is the host:port it claims to be at instead of
	// the address it listens on (another member's, to impersonate it).
	Advertise string
}

// Attacker is a memberlist member inside the namespace that is not a shoal
// agent: it advertises fixed metadata and ignores everything it is told.
type Attacker struct {
	ML *memberlist.Memberlist
}

// StartAttacker creates the attacker's memberlist inside the namespace, on
// PeerIP and a free port. Close shuts it down.
func (n *Net) StartAttacker(o AttackerOptions) (*Attacker, error) {
	c := memberlist.DefaultLANConfig()
	c.Name = o.Name
	c.Label = o.Cluster
	c.Delegate = attackerDelegate{meta: o.Meta}
	c.Logger = log.New(io.Discard, "", 0)
	c.TCPTimeout = 2 * time.Second
	c.BindAddr = n.PeerIP
	if o.Advertise != "" {
		// memberlist advertises its bound port when it picks one itself:
		// bind a fixed free one.
		l, err := n.Listen(0)
		if err != nil {
			return nil, err
		}
		c.BindPort = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		host, port, err := net.SplitHostPort(o.Advertise)
		if err != nil {
			return nil, fmt.Errorf("attacker advertise address %q: %w", o.Advertise, err)
		}
		c.AdvertiseAddr = host
		if c.AdvertisePort, err = strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("attacker advertise port %q: %w", port, err)
		}
	} else {
		c.BindPort = 0
	}
	if o.Key != nil {
		kr, err := memberlist.NewKeyring(nil, o.Key)
		if err != nil {
			return nil, fmt.Errorf("attacker keyring: %w", err)
		}
		c.Keyring = kr
	}
	var ml *memberlist.Memberlist
	err := n.Do(func() error {
		var err error
		ml, err = memberlist.Create(c)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("start attacker %s: %w", o.Name, err)
	}
	return &Attacker{ML: ml}, nil
}

// Join asks the agents at addrs to take the attacker in; it returns how
// many answered the state exchange, as memberlist.Join does.
func (a *Attacker) Join(addrs ...string) (int, error) { return a.ML.Join(addrs) }

// KeepJoining joins addrs every interval until the returned stop is
// called (stop waits for the last join).
func (a *Attacker) KeepJoining(interval time.Duration, addrs ...string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			_, _ = a.ML.Join(addrs)
			select {
			case <-done:
				return
			case <-time.After(interval):
			}
		}
	})
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// Close shuts the attacker down without a leave message.
func (a *Attacker) Close() error { return a.ML.Shutdown() }

type attackerDelegate struct{ meta []byte }

func (d attackerDelegate) NodeMeta(int) []byte               { return d.meta }
func (attackerDelegate) NotifyMsg([]byte)                    {}
func (attackerDelegate) GetBroadcasts(int, int) [][]byte     { return nil }
func (attackerDelegate) LocalState(bool) []byte              { return nil }
func (attackerDelegate) MergeRemoteState(buf []byte, _ bool) {}

// Listener is an HTTP server inside the namespace that records every
// request and answers each with a redirect to RedirectPath on itself, so
// that a client following redirects shows up as a second request.
type Listener struct {
	srv  *http.Server
	addr string
	done chan struct{}

	mu   sync.Mutex
	reqs []string
}

// RedirectPath is where the Listener redirects every request.
const RedirectPath = "/redirected"

// StartListener starts a Listener on PeerIP and a free port.
func (n *Net) StartListener() (*Listener, error) {
	l, err := n.Listen(0)
	if err != nil {
		return nil, err
	}
	ln := &Listener{addr: l.Addr().String(), done: make(chan struct{})}
	ln.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ln.mu.Lock()
			ln.reqs = append(ln.reqs, r.Method+" "+r.URL.RequestURI())
			ln.mu.Unlock()
			http.Redirect(w, r, "http://"+ln.addr+RedirectPath, http.StatusFound)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		defer close(ln.done)
		_ = ln.srv.Serve(l)
	}()
	return ln, nil
}

// Addr is the listener's host:port.
func (l *Listener) Addr() string { return l.addr }

// Requests returns "METHOD /path?query" of every request so far.
func (l *Listener) Requests() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.reqs...)
}

// Close stops the server and waits for it.
func (l *Listener) Close() error {
	err := l.srv.Close()
	<-l.done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
