package attacktest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/e2e"
	"github.com/shoal-dev/shoal/internal/testenv"
)

func TestMain(m *testing.M) {
	// memberlist's Shutdown does not wait for a probe in flight (see the
	// gossip package's TestMain).
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
		goleak.Cleanup(func(code int) {
			e2e.RemoveBinary()
			os.Exit(code)
		}))
}

const (
	// cluster is shoal's default --cluster.name, memberlist's label: the
	// attacker knows it, since it travels in clear.
	cluster = "shoal"
	// rwPassword is in the agents' remote_write URL.
	rwPassword = "rw-Pa55word-attacktest"
	// observe is how long a test watches for a change that must not come:
	// many gossip rounds (100 ms) and probe rounds (400 ms).
	observe = 3 * time.Second
	// waitFor bounds what must come (a refusal counted, a reload applied).
	waitFor = 30 * time.Second
)

// skipUnlessPossible skips under -short and without root (a network
// namespace needs it) and, with env, as every integration test without
// Consul and Prometheus. It builds the shoal binary and creates the
// namespace.
func skipUnlessPossible(t *testing.T, env bool) *Net {
	t.Helper()
	if testing.Short() {
		t.Skip("attacktest: runs shoal binaries in a network namespace; skipped under -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("attacktest: needs root to create a network namespace and a veth pair (ip netns add, ip link add); run as root")
	}
	if env {
		e2e.SkipUnlessIntegration(t)
	} else if _, err := e2e.Binary(); err != nil {
		t.Fatalf("attacktest: %v", err)
	}
	n, err := NewNet()
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, n.Close()) })
	return n
}

// newKey makes a gossip key as the README tells operators to
// (`openssl rand -base64 32`): 32 random bytes.
func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

// writeKeys writes a keyring file, one base64 key per line, the first
// encrypting.
func writeKeys(t *testing.T, path string, keys ...[]byte) {
	t.Helper()
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	}
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
}

// fingerprint is how /api/v1/cluster/self names a key: the first 8 hex
// digits of its SHA-256.
func fingerprint(k []byte) string {
	sum := sha256.Sum256(k)
	return hex.EncodeToString(sum[:4])
}

// TestAgentWithoutKeyRefusesToStart: an agent started as in the quick
// start, without a key, but with gossip on an address other hosts reach,
// exits at once with code 2 and a line naming the flag.
func TestAgentWithoutKeyRefusesToStart(t *testing.T) {
	n := skipUnlessPossible(t, false)
	g := testenv.ForTest(t)
	a, err := e2e.NewAgent(g, e2e.AgentOptions{Name: "keyless", Host: n.HostIP})
	require.NoError(t, err)
	require.NoError(t, a.Launch())
	select {
	case <-a.Exited():
	case <-time.After(waitFor):
		t.Fatal("an agent without a key on a non-loopback address kept running")
	}
	_, err = a.Process.Stop(time.Second) // reaps it
	require.NoError(t, err)
	require.Equal(t, 2, a.LastExit().ExitCode(), "exit code for a bad flag")
	logs, err := os.ReadFile(a.LogPath)
	require.NoError(t, err)
	require.Contains(t, string(logs), "--cluster.secret-key-file")
	require.Contains(t, string(logs), n.HostIP)
	require.Contains(t, string(logs), "--cluster.insecure")
}

// fleet is three agents configured as the README tells operators: every
// one with --cluster.secret-key-file (a file of its own, to rotate one at
// a time), gossip and web on the namespace's host side, and Consul, the
// targets and a receiver (with basic auth, the password in remote_write's
// URL) on loopback.
type fleet struct {
	net      *Net
	env      *e2e.Env
	agents   []*e2e.Agent
	keyFiles []string
	healthy  []string
	iv       time.Duration
}

func startFleet(t *testing.T, n *Net, key []byte) *fleet {
	t.Helper()
	ctx := t.Context()
	env, err := e2e.StartEnv(ctx, testenv.ForTest(t), e2e.EnvOptions{
		Targets:  12,
		Receiver: testenv.ReceiverOptions{BasicAuth: url.UserPassword("shoal", rwPassword)},
	})
	require.NoError(t, err)
	require.Contains(t, env.PromConfig().RemoteWriteURL, rwPassword)
	f := &fleet{net: n, env: env, healthy: env.Instances(true), iv: env.PromConfig().Interval()}
	dir := t.TempDir()
	f.agents, err = env.StartCluster(ctx, 3, "atk", func(i int, o *e2e.AgentOptions) {
		o.Host = n.HostIP
		o.LogLevel = "debug"
		path := filepath.Join(dir, fmt.Sprintf("gossip-%d.key", i))
		writeKeys(t, path, key)
		f.keyFiles = append(f.keyFiles, path)
		o.ExtraArgs = append(o.ExtraArgs, "--cluster.secret-key-file="+path)
	})
	require.NoError(t, err)
	// Settled: the subtests compare every agent's view before and after an
	// attack, and a load-aware plan published in between would change it.
	_, _, err = e2e.WaitSettled(ctx, f.agents, f.healthy)
	require.NoError(t, err)
	return f
}

// gossipAddrs are the agents' gossip addresses.
func (f *fleet) gossipAddrs() []string {
	var out []string
	for _, a := range f.agents {
		out = append(out, a.GossipAddr)
	}
	return out
}

// membership is what an agent's /api/v1/cluster/members says about the
// cluster, reduced to what an attack would change.
type membership struct {
	Digest  string
	Members []string // name state gossip-address http-address version started digest owned
}

func (f *fleet) memberships(ctx context.Context) ([]membership, error) {
	var out []membership
	for _, a := range f.agents {
		m, err := a.Members(ctx)
		if err != nil {
			return nil, err
		}
		ms := membership{Digest: m.Digest}
		for _, mm := range m.Members {
			ms.Members = append(ms.Members, fmt.Sprintf("%s %s %s %s %s %s %s %d",
				mm.Name, mm.State, mm.Addr, mm.HTTPAddr, mm.Version, mm.Started.Format(time.RFC3339Nano), mm.Digest, mm.OwnedTargets))
		}
		slices.Sort(ms.Members)
		out = append(out, ms)
	}
	return out, nil
}

// counters sums the named counters over every agent's /metrics.
func (f *fleet) counters(ctx context.Context, cs ...testenv.Counter) (map[testenv.Counter]float64, error) {
	sum := map[testenv.Counter]float64{}
	for _, a := range f.agents {
		m, err := testenv.FetchCounters(ctx, http.DefaultClient, a.URL+"/metrics", cs)
		if err != nil {
			return nil, err
		}
		for c, v := range m {
			sum[c] += v
		}
	}
	return sum, nil
}

var (
	joinsTotal    = testenv.Counter{Name: "shoal_cluster_node_joins_total"}
	ringChanges   = testenv.Counter{Name: "shoal_cluster_ring_changes_total"}
	failuresTotal = testenv.Counter{Name: "shoal_cluster_node_failures_total"}
	conflicts     = testenv.Counter{Name: "shoal_cluster_name_conflicts_total"}
)

func refusals(reason string) testenv.Counter {
	return testenv.Counter{Name: "shoal_cluster_peer_meta_rejected_total", Labels: fmt.Sprintf("reason=%q", reason)}
}

// unchanged checks for observe that the agents' views of the cluster stay
// what they were, that they keep running, and that the counters stay put.
func (f *fleet) unchanged(t *testing.T, before []membership, cs map[testenv.Counter]float64) {
	t.Helper()
	ctx := t.Context()
	deadline := time.Now().Add(observe)
	for time.Now().Before(deadline) {
		now, err := f.memberships(ctx)
		require.NoError(t, err)
		require.Equal(t, before, now, "an agent's view of the cluster changed")
		for _, a := range f.agents {
			require.True(t, a.Running(), "%s exited", a.Name)
			require.NoError(t, a.Ready(ctx))
		}
		time.Sleep(20 * time.Millisecond)
	}
	keys := make([]testenv.Counter, 0, len(cs))
	for c := range cs {
		keys = append(keys, c)
	}
	now, err := f.counters(ctx, keys...)
	require.NoError(t, err)
	for c, v := range cs {
		require.Equal(t, v, now[c], "%s %s changed", c.Name, c.Labels)
	}
}

// touch opens every agent's status page and APIs, which make agents ask
// their peers (the page asks every member's /api/v1/cluster/self).
func (f *fleet) touch(t *testing.T) {
	t.Helper()
	for _, a := range f.agents {
		for _, p := range []string{"/", "/api/v1/cluster/members", "/api/v1/cluster/targets", "/api/v1/cluster/self", "/api/v1/targets", "/api/v1/delivery"} {
			resp, err := http.Get(a.URL + p)
			require.NoError(t, err)
			_, err = readAll(resp)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s%s", a.Name, p)
		}
	}
}

// forged is shoal metadata written by hand: an active agent whose HTTP
// address is the attacker's listener, apart from what fields overrides.
func forged(httpAddr, fields string) []byte {
	return []byte(`{"v":1,"s":"active","ver":"evil","w":1,"h":"` + httpAddr + `"` + fields + `}`)
}

// TestAttacker runs the attacks against one fleet in turn (each leaves it as
// it was), then rotates its key and checks what the receiver got.
func TestAttacker(t *testing.T) {
	n := skipUnlessPossible(t, true)
	keyA, keyB := newKey(t), newKey(t)
	f := startFleet(t, n, keyA)
	ctx := t.Context()
	listener, err := n.StartListener()
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, listener.Close()) })
	watched := []testenv.Counter{joinsTotal, ringChanges, failuresTotal}
	snapshot := func() ([]membership, map[testenv.Counter]float64) {
		t.Helper()
		ms, err := f.memberships(ctx)
		require.NoError(t, err)
		cs, err := f.counters(ctx, watched...)
		require.NoError(t, err)
		return ms, cs
	}

	t.Run("without the key it cannot join", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			key  []byte
		}{{"no key", nil}, {"another key", newKey(t)}} {
			t.Run(tc.name, func(t *testing.T) {
				before, cs := snapshot()
				at, err := n.StartAttacker(AttackerOptions{
					Name: "evil-" + strings.ReplaceAll(tc.name, " ", "-"), Key: tc.key, Cluster: cluster,
					Meta: forged(listener.Addr(), `,"w":100`),
				})
				require.NoError(t, err)
				defer func() { require.NoError(t, at.Close()) }()
				joined, err := at.Join(f.gossipAddrs()...)
				require.Error(t, err, "the state exchange is refused")
				require.Zero(t, joined)
				f.touch(t)
				f.unchanged(t, before, cs)
				require.Equal(t, 1, at.ML.NumMembers(), "the attacker learnt no member")
				require.Empty(t, listener.Requests(), "an agent sent a request to the attacker")
			})
		}
	})

	t.Run("with the key, forged metadata is refused", func(t *testing.T) {
		dayAhead := strconv.FormatInt(time.Now().Add(24*time.Hour).UnixMilli(), 10)
		for _, tc := range []struct {
			name, reason string
			meta         []byte
		}{
			{"weight 1000", "weight", forged(listener.Addr(), `,"w":1000`)},
			{"owning from a day ahead", "instant", forged(listener.Addr(), `,"a":`+dayAhead)},
			{"http address with a path and a query", "http_address", forged(listener.Addr()+"/x?", "")},
			{"http address with userinfo", "http_address", forged("me@"+listener.Addr(), "")},
		} {
			t.Run(tc.name, func(t *testing.T) {
				name := "evil-" + strings.ReplaceAll(tc.name, " ", "-")
				before, cs := snapshot()
				refused := refusals(tc.reason)
				r0, err := f.counters(ctx, refused)
				require.NoError(t, err)
				at, err := n.StartAttacker(AttackerOptions{Name: name, Key: keyA, Cluster: cluster, Meta: tc.meta})
				require.NoError(t, err)
				defer func() { require.NoError(t, at.Close()) }()
				joined, err := at.Join(f.gossipAddrs()...)
				require.NoError(t, err, "with the key the state exchange itself succeeds")
				require.Equal(t, len(f.agents), joined)
				require.Eventually(t, func() bool {
					r, err := f.counters(ctx, refused)
					return err == nil && r[refused] >= r0[refused]+float64(len(f.agents))
				}, waitFor, 50*time.Millisecond, "every agent counts the refusal")
				for _, a := range f.agents {
					require.Eventually(t, func() bool {
						logs, err := os.ReadFile(a.LogPath)
						return err == nil && strings.Contains(string(logs), "member="+name+" reason="+tc.reason)
					}, waitFor, 50*time.Millisecond, "%s logs the refusal", a.Name)
				}
				f.touch(t)
				f.unchanged(t, before, cs)
				require.Empty(t, listener.Requests(), "an agent sent a request to the attacker")
			})
		}
	})

	t.Run("claiming a running agent's name does not make it exit", func(t *testing.T) {
		victim := f.agents[1]
		dayAgo := strconv.FormatInt(time.Now().Add(-24*time.Hour).UnixMilli(), 10)
		for _, tc := range []struct {
			name, advertise string
		}{
			{"from another address", ""},
			{"at its own gossip address", victim.GossipAddr},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before, cs := snapshot()
				c0, err := f.counters(ctx, conflicts)
				require.NoError(t, err)
				at, err := n.StartAttacker(AttackerOptions{
					Name: victim.Name, Key: keyA, Cluster: cluster, Advertise: tc.advertise,
					Meta: forged(listener.Addr(), `,"w":100,"t":`+dayAgo),
				})
				require.NoError(t, err)
				defer func() { require.NoError(t, at.Close()) }()
				// It repeats its claim: every join is a state exchange after
				// which it refutes the running agent's record with its own.
				stop := at.KeepJoining(200*time.Millisecond, f.agents[0].GossipAddr)
				defer stop()
				require.Eventually(t, func() bool {
					c, err := f.counters(ctx, conflicts)
					return err == nil && c[conflicts] > c0[conflicts]
				}, waitFor, 50*time.Millisecond, "the claim was seen and counted")
				f.touch(t)
				f.unchanged(t, before, cs)
				require.Empty(t, listener.Requests(), "an agent sent a request to the attacker")
			})
		}
	})

	t.Run("a member's http address is only used with shoal's api paths", func(t *testing.T) {
		// The control of the tests above: a member with the key and valid
		// metadata (joining, so it owns nothing) whose HTTP address is the
		// listener is asked by the agents once their pages are opened, on
		// shoal's own paths only, and its redirect is not followed.
		at, err := n.StartAttacker(AttackerOptions{
			Name: "listener", Key: keyA, Cluster: cluster,
			Meta: []byte(`{"v":1,"s":"joining","ver":"evil","w":1,"h":"` + listener.Addr() + `"}`),
		})
		require.NoError(t, err)
		defer func() { require.NoError(t, at.Close()) }()
		_, err = at.Join(f.gossipAddrs()...)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			f.touch(t)
			return len(listener.Requests()) >= len(f.agents)
		}, waitFor, 200*time.Millisecond, "the agents never asked a member's API: the checks above could not fail")
		for _, r := range listener.Requests() {
			require.True(t, strings.HasPrefix(r, "GET /api/v1/"), "request %q", r)
			require.NotContains(t, r, RedirectPath, "a redirect was followed")
		}
		require.NoError(t, at.Close())
		// The fleet forgets it once it is declared dead.
		require.Eventually(t, func() bool {
			ms, err := f.memberships(ctx)
			if err != nil {
				return false
			}
			for _, m := range ms {
				if len(m.Members) != len(f.agents) {
					return false
				}
			}
			_, err = e2e.Converged(ctx, f.agents, f.healthy)
			return err == nil
		}, waitFor, 200*time.Millisecond)
	})

	t.Run("key rotation keeps every sample", func(t *testing.T) {
		rotate(t, f, keyA, keyB)
	})

	t.Run("the old key is refused after the rotation", func(t *testing.T) {
		before, cs := snapshot()
		at, err := n.StartAttacker(AttackerOptions{Name: "old-key", Key: keyA, Cluster: cluster, Meta: forged(listener.Addr(), "")})
		require.NoError(t, err)
		defer func() { require.NoError(t, at.Close()) }()
		joined, err := at.Join(f.gossipAddrs()...)
		require.Error(t, err)
		require.Zero(t, joined)
		f.unchanged(t, before, cs)
	})

	t.Run("no password in logs or metrics", func(t *testing.T) {
		// A receiver outage makes every agent log its failed requests,
		// whose errors quote the URL.
		require.NoError(t, f.env.StopReceiver())
		for _, a := range f.agents {
			require.Eventually(t, func() bool {
				logs, err := os.ReadFile(a.LogPath)
				return err == nil && strings.Contains(string(logs), "Remote write failed, retrying")
			}, waitFor, 100*time.Millisecond, "%s logs the failed remote write", a.Name)
		}
		require.NoError(t, f.env.StartReceiver())
		var labelled int
		for _, a := range f.agents {
			logs, err := os.ReadFile(a.LogPath)
			require.NoError(t, err)
			require.NotContains(t, string(logs), rwPassword, "%s logged the remote-write password", a.Name)
			require.Contains(t, string(logs), "shoal:xxxxx@", "%s logged the URL masked: the check saw it", a.Name)
			resp, err := http.Get(a.URL + "/metrics")
			require.NoError(t, err)
			body, err := readAll(resp)
			require.NoError(t, err)
			require.NotContains(t, body, rwPassword, "%s shows the password on /metrics", a.Name)
			labelled += strings.Count(body, `url="http://shoal:xxxxx@`)
		}
		require.Positive(t, labelled, "remote write's metrics carry the masked URL")
	})
}

// rotate moves the fleet from key A to key B as the README says: [A, B],
// then [B, A], then [B], one agent at a time with SIGHUP, checking after
// each reload that the agent took it and that the cluster stayed one; then
// reads back from the receiver that no target has a gap or a duplicate.
func rotate(t *testing.T, f *fleet, keyA, keyB []byte) {
	ctx := t.Context()
	c0, err := f.counters(ctx, failuresTotal)
	require.NoError(t, err)
	start := time.Now()
	for _, step := range [][][]byte{{keyA, keyB}, {keyB, keyA}, {keyB}} {
		for i, a := range f.agents {
			writeKeys(t, f.keyFiles[i], step...)
			require.NoError(t, syscall.Kill(a.Pid(), syscall.SIGHUP))
			require.Eventually(t, func() bool {
				s, err := a.Self(ctx)
				return err == nil && s.Gossip.Keys == len(step) && s.Gossip.Encrypts == fingerprint(step[0])
			}, waitFor, 50*time.Millisecond, "%s reloads its keyring", a.Name)
			// A peer that cannot read the agent any more would suspect it
			// within a few probe rounds and declare it dead soon after
			// (counted below); one second of probes first.
			time.Sleep(time.Second)
			require.NoError(t, e2e.Poll(ctx, 10*time.Second, 100*time.Millisecond, func(ctx context.Context) error {
				_, err := e2e.Converged(ctx, f.agents, f.healthy)
				return err
			}), "after %s took %d keys", a.Name, len(step))
		}
	}
	c1, err := f.counters(ctx, failuresTotal)
	require.NoError(t, err)
	require.Equal(t, c0[failuresTotal], c1[failuresTotal], "no member was declared dead during the rotation")

	// The window covers the rotation and two intervals after it.
	time.Sleep(2 * f.iv)
	w := e2e.Window{Start: start, End: time.Now(), Interval: f.iv}
	_, err = e2e.WaitIngested(ctx, f.env.Receiver, `farm_scrapes_total{job="farm"}`, f.healthy, w.End)
	require.NoError(t, err)
	samples, err := e2e.Collect(ctx, f.env.Receiver, `farm_scrapes_total{job="farm"}`, w.Start, w.End)
	require.NoError(t, err)
	stats := e2e.AnalyzeAll(samples, f.healthy, w, true)
	for _, st := range stats {
		require.Zero(t, st.Gaps, "%s: gaps during the rotation: %+v", st.Instance, st)
		require.Zero(t, st.Missing, "%s: samples missing: %+v", st.Instance, st)
		require.Zero(t, st.Duplicates(), "%s: duplicates: %+v", st.Instance, st)
		require.InDelta(t, w.Expected(), st.Samples, 1, "%s: samples in %s", st.Instance, w.End.Sub(w.Start))
	}
	t.Logf("ATTACK test=key_rotation agents=%d targets=%d reloads=%d window_s=%.1f %s",
		len(f.agents), len(f.healthy), 3*len(f.agents), w.End.Sub(w.Start).Seconds(), e2e.Summarize(stats))
}

func readAll(resp *http.Response) (string, error) {
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
