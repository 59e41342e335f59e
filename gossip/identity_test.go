package gossip

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// rawMember starts a memberlist member that is not a shoal node (an
// attacker, or an agent of a version without the identity exchange) named
// name with key and metadata meta, listening on bind (host:port) and
// claiming to be at advertise ("": bind).
func rawMember(t *testing.T, name string, key, meta []byte, bind, advertise string) *memberlist.Memberlist {
	t.Helper()
	c := memberlist.DefaultLocalConfig()
	c.Name = name
	c.Label = "test"
	host, port, err := splitHostPort(bind)
	require.NoError(t, err)
	c.BindAddr, c.BindPort, c.AdvertisePort = host, port, port
	if advertise != "" {
		ah, ap, err := splitHostPort(advertise)
		require.NoError(t, err)
		c.AdvertiseAddr, c.AdvertisePort = ah, ap
	}
	c.Delegate = attackerDelegate{meta: meta}
	c.Logger = log.New(io.Discard, "", 0)
	c.LogOutput = nil
	c.TCPTimeout = time.Second
	kr, err := memberlist.NewKeyring(nil, key)
	require.NoError(t, err)
	c.Keyring = kr
	ml, err := memberlist.Create(c)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ml.Shutdown() })
	return ml
}

// freeAddr is a loopback address whose port was free for TCP.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// keepJoining makes an attacker repeat its claim: every join is a state
// exchange in which it learns the running member's incarnation and refutes
// it with its own metadata. It stops at the test's end.
func keepJoining(t *testing.T, ml *memberlist.Memberlist, addr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			_, _ = ml.Join([]string{addr})
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// peerOf returns how n sees the member named name.
func peerOf(n *testNode, name string) (Peer, bool) {
	for _, p := range n.Peers() {
		if p.Name == name {
			return p, true
		}
	}
	return Peer{}, false
}

// TestImpostorAtMemberAddressIsRefused: an attacker with the key claims a
// running member's name and its gossip address, with other metadata (a
// weight of 100, its own HTTP address, an older start), over and over.
// memberlist takes such claims (same name, same address, higher
// incarnation); the peers ask the address who is there, the running
// member answers, and no peer ever uses the forged record.
func TestImpostorAtMemberAddressIsRefused(t *testing.T) {
	nodes := startCluster(t, 3, withKey(keyA))
	victim := nodes[1]
	before, ok := peerOf(nodes[0], victim.Name())
	require.True(t, ok)
	digest := nodes[0].Ring().Digest()
	dayAgo := strconv.FormatInt(time.Now().Add(-24*time.Hour).UnixMilli(), 10)
	ml := rawMember(t, victim.Name(), keyA, forgedMeta(`,"w":100,"h":"127.0.0.1:1","t":`+dayAgo), freeAddr(t), victim.Addr())
	keepJoining(t, ml, nodes[0].Addr())

	require.Eventually(t, func() bool {
		return testutil.ToFloat64(nodes[0].idents.refused.WithLabelValues(claimName)) > 0 &&
			testutil.ToFloat64(nodes[2].idents.refused.WithLabelValues(claimName)) > 0
	}, 10*time.Second, 10*time.Millisecond, "the peers refused the claim")
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range []*testNode{nodes[0], nodes[2]} {
			p, ok := peerOf(n, victim.Name())
			require.True(t, ok)
			require.Equal(t, before.HTTPAddr, p.HTTPAddr, "%s uses the impostor's record", n.Name())
			require.Equal(t, before.Weight, p.Weight)
			require.True(t, before.Started.Equal(p.Started))
			require.Equal(t, digest, n.Ring().Digest())
		}
		require.True(t, victim.Ready())
		time.Sleep(2 * time.Millisecond)
	}
	select {
	case err := <-victim.done:
		t.Fatalf("the victim stopped: %v", err)
	default:
	}
}

// TestNewcomerAtMemberAddressIsRefused: a newcomer with the key under a
// name of its own at a running member's gossip address never enters the
// member list (it would take targets until found dead: the member there
// answers only to its own name).
func TestNewcomerAtMemberAddressIsRefused(t *testing.T) {
	nodes := startCluster(t, 2, withKey(keyA))
	victim := nodes[1]
	digest := nodes[0].Ring().Digest()
	ml := rawMember(t, "evil", keyA, forgedMeta(`,"w":100`), freeAddr(t), victim.Addr())
	keepJoining(t, ml, nodes[0].Addr())
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(nodes[0].idents.refused.WithLabelValues(claimAddress)) > 0
	}, 10*time.Second, 10*time.Millisecond, "the claim was refused")
	require.Never(t, func() bool {
		for _, n := range nodes {
			if _, ok := peerOf(n, "evil"); ok || n.Ring().Digest() != digest {
				return true
			}
		}
		return false
	}, 3*time.Second, 5*time.Millisecond, "the newcomer entered the member list")
}

// TestRestartAtSameAddressIsTaken: a member killed and restarted at once
// under its name and address, before anyone noticed it was gone, is a new
// process the address confirms: peers take its new record without waiting.
// A restarted process that does not answer (an older version) is taken
// after identityTimeout.
func TestRestartAtSameAddressIsTaken(t *testing.T) {
	for _, tc := range []struct {
		name      string
		answers   bool
		confirmed string
	}{
		{"the address confirms it", true, "a member restarted under its name and address"},
		{"no answer", false, "a member's new identity was not confirmed by its address in time; taking it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncBuffer{}
			logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			first := startNodeLog(t, "node-00", nil, withKey(keyA), logger)
			old := startNode(t, "node-01", []string{first.Addr()}, withKey(keyA))
			waitConverged(t, []*testNode{first, old}, 2, 30*time.Second)
			was, ok := peerOf(first, "node-01")
			require.True(t, ok)
			addr := old.Addr()
			old.kill()

			started := time.Now()
			var restarted func() (Peer, bool)
			if tc.answers {
				n := startNode(t, "node-01", []string{first.Addr()}, func(c *Config) {
					c.SecretKey = keyA
					c.BindAddr = addr
					c.HTTPAddr = "127.0.0.1:9191"
				})
				restarted = func() (Peer, bool) { return peerOf(first, n.Name()) }
			} else {
				ml := rawMember(t, "node-01", keyA, forgedMeta(`,"h":"127.0.0.1:9191","t":`+strconv.FormatInt(time.Now().UnixMilli(), 10)), addr, "")
				keepJoining(t, ml, first.Addr())
				restarted = func() (Peer, bool) { return peerOf(first, "node-01") }
			}
			require.Eventually(t, func() bool {
				p, ok := restarted()
				return ok && p.HTTPAddr == "127.0.0.1:9191" && !p.Started.Equal(was.Started)
			}, 20*time.Second, 5*time.Millisecond, "the peer took the restarted member's record")
			took := time.Since(started)
			require.Contains(t, logs.String(), tc.confirmed)
			require.Zero(t, testutil.ToFloat64(first.idents.refused.WithLabelValues(claimName)))
			if tc.answers {
				require.NotContains(t, logs.String(), "not confirmed by its address in time")
			}
			t.Logf("the restart was taken after %s", took.Round(time.Millisecond))
		})
	}
}

// TestIdentityChecksLog: refusals are logged once per member and minute.
func TestIdentityChecksLog(t *testing.T) {
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	first := startNodeLog(t, "node-00", nil, withKey(keyA), logger)
	second := startNode(t, "node-01", []string{first.Addr()}, withKey(keyA))
	waitConverged(t, []*testNode{first, second}, 2, 30*time.Second)
	ml := rawMember(t, "evil", keyA, forgedMeta(""), freeAddr(t), second.Addr())
	keepJoining(t, ml, first.Addr())
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(first.idents.refused.WithLabelValues(claimAddress)) >= 3
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, 1, strings.Count(logs.String(), "refusing a newcomer at a running member's gossip address"))
	require.Contains(t, logs.String(), "member=evil addr="+second.Addr()+" held_by=node-01")
}

// recordingDelegate is attackerDelegate that keeps the user messages it
// receives.
type recordingDelegate struct {
	attackerDelegate
	msgs chan []byte
}

func (d recordingDelegate) NotifyMsg(b []byte) {
	select {
	case d.msgs <- append([]byte(nil), b...):
	default:
	}
}

// TestIdentityAnswersGoToMembersOnly: a node answers a challenge about
// itself, but only to a member's address, so that a challenge cannot make
// it send packets elsewhere.
func TestIdentityAnswersGoToMembersOnly(t *testing.T) {
	node := startNode(t, "node-00", nil, withKey(keyA))
	waitConverged(t, []*testNode{node}, 1, 10*time.Second)
	c := memberlist.DefaultLocalConfig()
	c.Name, c.Label = "asker", "test"
	c.BindAddr, c.BindPort = "127.0.0.1", 0
	rec := recordingDelegate{attackerDelegate{meta: forgedMeta(`,"s":"joining"`)}, make(chan []byte, 16)}
	c.Delegate = rec
	c.Logger = log.New(io.Discard, "", 0)
	kr, err := memberlist.NewKeyring(nil, keyA)
	require.NoError(t, err)
	c.Keyring = kr
	ml, err := memberlist.Create(c)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ml.Shutdown() })
	_, err = ml.Join([]string{node.Addr()})
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, ok := peerOf(node, "asker"); return ok }, 10*time.Second, 10*time.Millisecond)
	asker := ml.LocalNode().Address()

	ask := func(reply string) {
		b := []byte(`{"n":"0123456789abcdef","m":"node-00","r":"` + reply + `"}`)
		require.NoError(t, ml.SendToAddress(memberlist.Address{Addr: node.Addr(), Name: "node-00"}, append([]byte{whoTag}, b...)))
	}
	// To a member's address: answered.
	ask(asker)
	select {
	case b := <-rec.msgs:
		require.Equal(t, byte(iamTag), b[0])
		require.Contains(t, string(b), `"n":"0123456789abcdef"`)
		require.Contains(t, string(b), `"m":"node-00"`)
	case <-time.After(10 * time.Second):
		t.Fatal("a member's challenge got no answer")
	}
	// To an address no member has: not answered.
	other, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = other.Close() }()
	ask(other.LocalAddr().String())
	require.NoError(t, other.SetReadDeadline(time.Now().Add(time.Second)))
	_, _, err = other.ReadFrom(make([]byte, 2048))
	require.Error(t, err, "an answer went to an address no member has")
}

// TestRestartWithGraceWhoseLeaveWasMissed: a member announces leaving with
// a restart grace and its new process is at the same address before its
// peer heard of the old one's departure (the leave message lost, or the old
// process killed after the announcement). The peer replaces the leaving
// record by the new process's in place, without the tombstone a leave
// leaves: the grace must hold all the same, so the peer never takes the
// restarting member's keys, not even while the new process is joining or
// its identity is being checked.
func TestRestartWithGraceWhoseLeaveWasMissed(t *testing.T) {
	first := startNode(t, "node-00", nil, withKey(keyA))
	old := startNode(t, "node-01", []string{first.Addr()}, withKey(keyA))
	waitConverged(t, []*testNode{first, old}, 2, 30*time.Second)
	addr := old.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	until := time.Now().Add(20 * time.Second)
	_, err := old.AnnounceLeaving(ctx, until)
	require.NoError(t, err)
	old.kill()

	// Watch node-00's ring from now until the new process is active and
	// seen so.
	var lost atomic.Int64
	watch, stop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watch)
		for {
			if !first.Ring().Has("node-01") {
				lost.Add(1)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	back := startNode(t, "node-01", []string{first.Addr()}, func(c *Config) {
		c.SecretKey = keyA
		c.BindAddr = addr
		c.Resume = until
	})
	require.Eventually(t, func() bool {
		p, ok := peerOf(first, "node-01")
		return back.Ready() && ok && p.State == StateActive
	}, 20*time.Second, 5*time.Millisecond)
	close(stop)
	<-watch
	require.Zero(t, lost.Load(), "node-00 took the restarting member's keys during its restart grace (ring checks without node-01)")
}
