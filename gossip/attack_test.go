package gossip

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// The tests in this file play an operator's adversary: a memberlist member
// written in Go, as one would write it in 50 lines, against agents that
// gossip with a key.

var (
	keyA = []byte("0123456789abcdef0123456789abcdef")
	keyB = []byte("fedcba9876543210fedcba9876543210")
)

// attackerDelegate advertises fixed metadata and ignores everything else.
type attackerDelegate struct{ meta []byte }

func (d attackerDelegate) NodeMeta(int) []byte                  { return d.meta }
func (attackerDelegate) NotifyMsg([]byte)                       {}
func (attackerDelegate) GetBroadcasts(int, int) [][]byte        { return nil }
func (attackerDelegate) LocalState(bool) []byte                 { return nil }
func (attackerDelegate) MergeRemoteState(buf []byte, join bool) {}

// startAttacker starts a raw memberlist member on loopback named name, with
// key (nil: none) and metadata meta, in the test clusters' label, and joins
// it to addr. It returns the member and Join's error.
func startAttacker(t *testing.T, name string, key []byte, meta []byte, addr string) (*memberlist.Memberlist, error) {
	t.Helper()
	c := memberlist.DefaultLocalConfig()
	c.Name = name
	c.Label = "test"
	c.BindAddr, c.BindPort, c.AdvertisePort = "127.0.0.1", 0, 0
	c.Delegate = attackerDelegate{meta: meta}
	c.Logger = log.New(io.Discard, "", 0)
	c.LogOutput = nil
	c.TCPTimeout = time.Second
	if key != nil {
		kr, err := memberlist.NewKeyring(nil, key)
		require.NoError(t, err)
		c.Keyring = kr
	}
	ml, err := memberlist.Create(c)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ml.Shutdown() })
	_, err = ml.Join([]string{addr})
	return ml, err
}

// forgedMeta is the JSON an attacker writes by hand: a valid shoal
// metadata record apart from what fields overrides.
func forgedMeta(fields string) []byte {
	return []byte(`{"v":1,"s":"active","ver":"evil","w":1,"h":"127.0.0.1:9090"` + fields + `}`)
}

// syncBuffer is a log sink the test can read while nodes write to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func withKey(key []byte) func(*Config) {
	return func(c *Config) { c.SecretKey = key }
}

func peerNames(n *testNode) []string {
	var out []string
	for _, p := range n.Peers() {
		out = append(out, p.Name)
	}
	return out
}

func TestAttackerWithoutKeyCannotJoin(t *testing.T) {
	nodes := startCluster(t, 2, withKey(keyA))
	digest := nodes[0].Ring().Digest()
	joins := testutil.ToFloat64(nodes[0].metrics.joins)
	for _, tc := range []struct {
		name string
		key  []byte
	}{
		{"no key", nil},
		{"another key", keyB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ml, err := startAttacker(t, "evil", tc.key, forgedMeta(""), nodes[0].Addr())
			require.Error(t, err, "the push/pull of the join is refused")
			require.Equal(t, 1, ml.NumMembers())
			// Its UDP gossip is dropped as well: it never shows up.
			require.Never(t, func() bool {
				return len(nodes[0].Peers()) != 2 || len(nodes[1].Peers()) != 2
			}, time.Second, 20*time.Millisecond)
			for _, n := range nodes {
				require.Equal(t, []string{"node-00", "node-01"}, peerNames(n))
				require.Equal(t, digest, n.Ring().Digest())
			}
			require.Equal(t, joins, testutil.ToFloat64(nodes[0].metrics.joins))
		})
	}
}

// TestForgedMetadataIsRefused: with the right key but claims no agent
// makes, the attacker is refused and logged, and no ring changes.
func TestForgedMetadataIsRefused(t *testing.T) {
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	first := startNodeLog(t, "node-00", nil, withKey(keyA), logger)
	second := startNodeLog(t, "node-01", []string{first.Addr()}, withKey(keyA), logger)
	nodes := []*testNode{first, second}
	waitConverged(t, nodes, 2, 30*time.Second)
	digest := first.Ring().Digest()
	dayAhead := strconv.FormatInt(time.Now().Add(24*time.Hour).UnixMilli(), 10)
	for _, tc := range []struct {
		name, meta, reason string
	}{
		{"weight 1000", string(forgedMeta(`,"w":1000`)), reasonWeight},
		{"since a day ahead", string(forgedMeta(`,"a":` + dayAhead)), reasonInstant},
		{"until a day ahead", `{"v":1,"s":"leaving","w":1,"u":` + dayAhead + `}`, reasonInstant},
		{"http address with a path", string(forgedMeta(`,"h":"127.0.0.1:9090/x?"`)), reasonAddress},
		{"http address with userinfo", string(forgedMeta(`,"h":"me@127.0.0.1:9090"`)), reasonAddress},
		{"not shoal metadata", `hello`, reasonFormat},
		{"plan version that wraps", string(forgedMeta(`,"pv":18446744073709551615,"pd":"1","pa":1`)), reasonPlan},
		{"plan a day ahead", string(forgedMeta(`,"pv":2,"pd":"1","pa":` + dayAhead)), reasonInstant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "evil-" + strings.ReplaceAll(tc.name, " ", "-")
			before := testutil.ToFloat64(first.metrics.refused.WithLabelValues(tc.reason))
			_, _ = startAttacker(t, name, keyA, []byte(tc.meta), first.Addr())
			require.Eventually(t, func() bool {
				return testutil.ToFloat64(first.metrics.refused.WithLabelValues(tc.reason)) > before
			}, 10*time.Second, 10*time.Millisecond, "refusal counted")
			require.Eventually(t, func() bool {
				return strings.Contains(logs.String(), "member="+name+" reason="+tc.reason)
			}, 10*time.Second, 10*time.Millisecond, "refusal logged")
			require.Never(t, func() bool {
				for _, n := range nodes {
					if len(n.Peers()) != 2 || n.Ring().Digest() != digest || n.Schedule().Final().Digest() != digest {
						return true
					}
				}
				return false
			}, time.Second, 20*time.Millisecond, "the ring is unchanged")
			for _, n := range nodes {
				require.NotContains(t, peerNames(n), name)
			}
		})
	}
	require.Contains(t, logs.String(), `msg="refusing a member's metadata; it stays out of the ring"`)
}

// TestNameClaimDoesNotStopRunningAgent: an attacker with the key claims a
// running agent's name and an older start time; the agent keeps running.
func TestNameClaimDoesNotStopRunningAgent(t *testing.T) {
	nodes := startCluster(t, 2, withKey(keyA))
	victim := nodes[1]
	digest := nodes[0].Ring().Digest()
	addr := victim.Addr()
	conflicts := testutil.ToFloat64(victim.metrics.conflicts)
	dayAgo := strconv.FormatInt(time.Now().Add(-24*time.Hour).UnixMilli(), 10)
	_, _ = startAttacker(t, victim.Name(), keyA, forgedMeta(`,"t":`+dayAgo), victim.Addr())
	require.Eventually(t, func() bool { return testutil.ToFloat64(victim.metrics.conflicts) > conflicts },
		10*time.Second, 10*time.Millisecond, "the victim saw the claim")
	require.Never(t, func() bool {
		select {
		case err := <-victim.done:
			victim.done <- err
			return true
		default:
			return false
		}
	}, 2*time.Second, 20*time.Millisecond, "the victim must not stand down")
	require.True(t, victim.Ready())
	for _, n := range nodes {
		require.Equal(t, digest, n.Ring().Digest())
	}
	for _, p := range nodes[0].Peers() {
		if p.Name == victim.Name() {
			require.Equal(t, addr, p.Addr, "peers keep the real agent's address")
		}
	}
}

func writeKeys(t *testing.T, path string, keys ...[]byte) {
	t.Helper()
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(base64StdEncode(k) + "\n")
	}
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
}

// pingAll checks that every node can ping every other one with its
// current keyring: a node that encrypts with a key a peer does not hold
// gets no answer from it.
func pingAll(t *testing.T, nodes []*testNode) {
	t.Helper()
	for _, from := range nodes {
		from.mu.Lock()
		ml := from.ml
		from.mu.Unlock()
		for _, to := range nodes {
			if to == from {
				continue
			}
			udp, err := net.ResolveUDPAddr("udp", to.Addr())
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				_, err := ml.Ping(to.Name(), udp)
				return err == nil
			}, 5*time.Second, 10*time.Millisecond, "%s pings %s", from.Name(), to.Name())
		}
	}
}

// TestKeyRotation moves three nodes from key A to key B without a gap:
// [A] -> [A, B] (B accepted everywhere) -> [B, A] (B encrypts) -> [B],
// one node at a time, the cluster staying one cluster at every step.
func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{}
	keyFile := func(name string) func(*Config) {
		return func(c *Config) {
			f := filepath.Join(dir, name)
			files[name] = f
			writeKeys(t, f, keyA)
			c.SecretKeyFile = f
		}
	}
	first := startNode(t, "node-00", nil, keyFile("node-00"))
	nodes := []*testNode{first}
	for i := 1; i < 3; i++ {
		name := fmt.Sprintf("node-%02d", i)
		nodes = append(nodes, startNode(t, name, []string{first.Addr()}, keyFile(name)))
	}
	waitConverged(t, nodes, 3, 30*time.Second)
	pingAll(t, nodes)
	for _, step := range []struct {
		name string
		keys [][]byte
	}{
		{"add B", [][]byte{keyA, keyB}},
		{"encrypt with B", [][]byte{keyB, keyA}},
		{"drop A", [][]byte{keyB}},
	} {
		for _, n := range nodes {
			writeKeys(t, files[n.Name()], step.keys...)
			require.NoError(t, n.ReloadKeys(), "%s on %s", step.name, n.Name())
			sec := n.Security()
			require.True(t, sec.Encrypted)
			require.Equal(t, fingerprint(step.keys[0]), sec.Fingerprints[0])
			require.Len(t, sec.Fingerprints, len(step.keys))
			pingAll(t, nodes)
			waitConverged(t, nodes, 3, 10*time.Second)
		}
	}
	for _, n := range nodes {
		require.Len(t, n.Peers(), 3)
		require.Zero(t, testutil.ToFloat64(n.metrics.failures), "%s: no member was declared dead during the rotation", n.Name())
	}

	// A bad file keeps the running keyring.
	require.NoError(t, os.WriteFile(files["node-00"], []byte("not a key\n"), 0o600))
	require.ErrorContains(t, first.ReloadKeys(), "reload gossip keyring: --cluster.secret-key-file")
	require.Equal(t, []string{fingerprint(keyB)}, first.Security().Fingerprints)
	pingAll(t, nodes)

	// A node that keeps only A can no longer talk to the others.
	writeKeys(t, files["node-02"], keyA)
	require.NoError(t, nodes[2].ReloadKeys())
	udp, err := net.ResolveUDPAddr("udp", nodes[0].Addr())
	require.NoError(t, err)
	nodes[2].mu.Lock()
	ml := nodes[2].ml
	nodes[2].mu.Unlock()
	_, err = ml.Ping(nodes[0].Name(), udp)
	require.Error(t, err, "a node with only the old key is cut off")
}

// TestKeyRotationTwoStepsCutsOff documents why rotation takes three steps:
// a node that encrypts with B ([B, A]) before its peers accept B is not
// understood by them.
func TestKeyRotationTwoStepsCutsOff(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "key")
	writeKeys(t, f, keyA)
	a := startNode(t, "a", nil, func(c *Config) { c.SecretKeyFile = f })
	b := startNode(t, "b", []string{a.Addr()}, withKey(keyA))
	waitConverged(t, []*testNode{a, b}, 2, 10*time.Second)
	pingAll(t, []*testNode{a, b})
	writeKeys(t, f, keyB, keyA)
	require.NoError(t, a.ReloadKeys())
	udp, err := net.ResolveUDPAddr("udp", b.Addr())
	require.NoError(t, err)
	a.mu.Lock()
	ml := a.ml
	a.mu.Unlock()
	_, err = ml.Ping(b.Name(), udp)
	require.Error(t, err, "b drops what a encrypts with B")
}

func TestParseKeyring(t *testing.T) {
	a64, b64 := base64StdEncode(keyA), base64StdEncode(keyB)
	for _, tc := range []struct {
		name, in string
		want     [][]byte
		err      string
	}{
		{"one base64 key", a64 + "\n", [][]byte{keyA}, ""},
		{"two keys, the first encrypts", b64 + "\n" + a64 + "\n", [][]byte{keyB, keyA}, ""},
		{"comments, blanks, spaces, CRLF", "# rotation 2026-12\r\n\n  " + b64 + "  \r\n" + a64, [][]byte{keyB, keyA}, ""},
		{"raw 16-byte key", "0123456789abcdef", [][]byte{[]byte("0123456789abcdef")}, ""},
		{"repeated key once", a64 + "\n" + a64, [][]byte{keyA}, ""},
		{"raw binary key with a newline", "0123456789\nbcdef", [][]byte{[]byte("0123456789\nbcdef")}, ""},
		{"empty", "\n# nothing\n", nil, "holds no key"},
		{"bad line", a64 + "\nshort\n", nil, "line 2: key must be 16, 24 or 32 bytes"},
		{"too many", strings.Repeat("0123456789abcdef\n", 1) + func() string {
			var b strings.Builder
			for i := range maxKeys {
				fmt.Fprintf(&b, "%016d\n", i)
			}
			return b.String()
		}(), nil, "at most 8 are allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseKeyring([]byte(tc.in))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestSecurity(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   Security
	}{
		{"loopback, no key", func(*Config) {}, Security{}},
		{"insecure", func(c *Config) { c.Insecure = true }, Security{Insecure: true}},
		{"key", withKey(keyA), Security{Encrypted: true, Keys: 1, Fingerprints: []string{fingerprint(keyA)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Name, c.BindAddr = "n", "127.0.0.1:0"
			tc.mutate(&c)
			n, err := New(c, nil, nil)
			require.NoError(t, err)
			require.Equal(t, tc.want, n.Security())
			require.NoError(t, n.ReloadKeys(), "nothing to reload without a key file")
		})
	}
}

func base64StdEncode(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
