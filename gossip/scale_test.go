package gossip

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// The scale report runs real clusters of 10, 50 and 100 gossip Nodes on
// 127.0.0.1 in this process, with the agent's defaults (DefaultConfig:
// probe 400 ms, probe timeout 300 ms, gossip 100 ms to 4 nodes, push/pull
// 15 s, handoff lead 5 s), node names and metadata shaped like a real
// fleet's, and reports for each size:
//
//   - join-seen, join-agreed: from starting a new node until every member
//     lists it, and until every member advertises the ring digest that
//     includes it (what a handoff waits for);
//   - death-seen, death-agreed: the same for that node killed without
//     leaving;
//   - idle wire bytes/s per node (UDP and TCP, what memberlist's transport
//     counts, averaged over the members) over a quiet window, and the extra
//     bytes per node one join and one crash cost;
//   - metadata size per member (the encoded Meta every member gossips) and
//     the CPU the cluster burns per node while idle;
//
// and, at 50 and 100 nodes, the ratio of bytes/s per node to the 10-node
// figure against log(N)/log(10), issue 14's bar for gossip traffic.
//
// Run with: make scale-report, or
// go test -run '^$' -bench ClusterScale -benchtime 1x -timeout 40m ./gossip/

var scaleSizes = []int{10, 50, 100}

// scaleRun is how one size is measured.
type scaleRun struct {
	size   int
	trials int           // joins and crashes
	settle time.Duration // quiet time before the idle window and after each event
	idle   time.Duration // the idle window
}

// scaleResult is what one size measured.
type scaleResult struct {
	joinSeen, joinAgreed, deathSeen, deathAgreed []time.Duration
	idleBytesPerNode                             float64 // per second
	idleUDPPerNode, idleTCPPerNode               float64 // per second
	idlePacketsPerNode                           float64 // per second
	idleUDPMedianPerNode                         float64 // per second, median of six slices of the window
	idleFalseDeaths                              float64 // members declared dead during the idle window
	pushPullBytes                                float64 // mean bytes sent per push/pull, both ways
	joinBytesPerNode, crashBytesPerNode          float64 // above idle, per event
	metaBytes, metaMax                           float64
	cpuPerNode                                   float64 // core-seconds per second per node, idle
	falseDeaths                                  float64
	unagreed                                     float64 // waits for agreement that timed out
}

func BenchmarkClusterScale(b *testing.B) {
	results := map[int]scaleResult{}
	for _, size := range scaleSizes {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			var r scaleResult
			for range b.N {
				trials := 5
				if size > 10 {
					trials = 3 // each waits up to two agreeTimeouts
				}
				r = measureScale(b, scaleRun{size: size, trials: trials, settle: 10 * time.Second, idle: 60 * time.Second})
			}
			reportDurations(b, "join-seen", r.joinSeen)
			reportDurations(b, "join-agreed", r.joinAgreed)
			reportDurations(b, "death-seen", r.deathSeen)
			reportDurations(b, "death-agreed", r.deathAgreed)
			b.ReportMetric(r.idleBytesPerNode, "idle-B/s/node")
			b.ReportMetric(r.idleUDPPerNode, "idle-udp-B/s/node")
			b.ReportMetric(r.idleTCPPerNode, "idle-tcp-B/s/node")
			b.ReportMetric(r.idlePacketsPerNode, "idle-packets/s/node")
			b.ReportMetric(r.idleUDPMedianPerNode, "idle-udp-median-B/s/node")
			b.ReportMetric(r.idleFalseDeaths, "idle-false-deaths")
			b.ReportMetric(r.pushPullBytes, "B/pushpull")
			b.ReportMetric(r.joinBytesPerNode/1024, "join-KB/node")
			b.ReportMetric(r.crashBytesPerNode/1024, "crash-KB/node")
			b.ReportMetric(r.metaBytes, "meta-B/member")
			b.ReportMetric(r.metaMax, "meta-max-B")
			b.ReportMetric(r.cpuPerNode*1000, "idle-cpu-ms/s/node")
			b.ReportMetric(r.falseDeaths, "false-deaths")
			b.ReportMetric(r.unagreed, "agree-timeouts")
			results[size] = r
			if base, ok := results[scaleSizes[0]]; ok && size != scaleSizes[0] {
				ratio := r.idleBytesPerNode / base.idleBytesPerNode
				logRatio := math.Log(float64(size)) / math.Log(float64(scaleSizes[0]))
				b.ReportMetric(ratio, fmt.Sprintf("B/s/node-vs-%d", scaleSizes[0]))
				b.ReportMetric(logRatio, fmt.Sprintf("logN-vs-%d", scaleSizes[0]))
				b.ReportMetric(ratio/logRatio, "ratio/logN")
				b.ReportMetric(r.idleUDPPerNode/base.idleUDPPerNode, fmt.Sprintf("udp-vs-%d", scaleSizes[0]))
				b.ReportMetric(r.idleTCPPerNode/base.idleTCPPerNode, fmt.Sprintf("tcp-vs-%d", scaleSizes[0]))
			}
		})
	}
}

// TestClusterScaleSmoke runs the scale measurement on 4 nodes with short
// windows, so that the report's code keeps working; the figures are not
// judged here.
func TestClusterScaleSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and waits for a death")
	}
	r := measureScale(t, scaleRun{size: 4, trials: 1, settle: time.Second, idle: 2 * time.Second})
	require.Len(t, r.joinSeen, 1)
	require.Len(t, r.deathAgreed, 1)
	require.Zero(t, r.unagreed, "4 nodes agree on every ring")
	require.Positive(t, r.idleUDPPerNode, "probes must have been counted")
	require.Positive(t, r.metaBytes)
	require.LessOrEqual(t, r.metaMax, float64(maxMetaSize))
}

// measureScale starts run.size nodes, waits until they agree, measures an
// idle window and then run.trials joins and crashes of one more node.
func measureScale(tb testing.TB, run scaleRun) scaleResult {
	sink := installWireSink(tb)
	nodes := startScaleCluster(tb, run.size)
	defer stopAll(nodes)

	// Every member advertises what it discovers, as agents do.
	for _, n := range nodes {
		n.SetDiscovery(Discovery{Config: rand.Uint64() | 1, Targets: rand.Uint64() | 1, Changed: time.Now()})
	}
	var res scaleResult
	if !waitAgreed(nodes, nil, run.size, &res) {
		tb.Logf("%d nodes: no agreement on one ring %s after the start; measuring anyway", run.size, agreeTimeout)
	}
	time.Sleep(run.settle)

	var metas []float64
	for _, n := range nodes {
		b, err := encodeMeta(n.localMeta())
		require.NoError(tb, err)
		metas = append(metas, float64(len(b)))
	}
	res.metaBytes = mean(metas)
	res.metaMax = slices.Max(metas)

	failuresBefore := failures(nodes)
	before, cpuBefore, start := sink.snapshot(), cpuTime(), time.Now()
	// UDP in six slices of the window too: a member wrongly declared dead
	// (a starved process) sets off a burst that the median slice leaves out.
	var slices6 []float64
	last, lastAt := before, start
	for range 6 {
		time.Sleep(run.idle / 6)
		now := sink.snapshot()
		slices6 = append(slices6, (now.udpBytes-last.udpBytes)/float64(run.size)/time.Since(lastAt).Seconds())
		last, lastAt = now, time.Now()
	}
	slices.Sort(slices6)
	res.idleUDPMedianPerNode = slices6[len(slices6)/2]
	res.idleFalseDeaths = failures(nodes) - failuresBefore
	idle := sink.snapshot().sub(before)
	elapsed := time.Since(start).Seconds()
	perNode := func(v float64) float64 { return v / float64(run.size) / elapsed }
	res.idleBytesPerNode = perNode(idle.wire())
	res.idleUDPPerNode = perNode(idle.udpBytes)
	res.idleTCPPerNode = perNode(idle.tcpWire())
	res.idlePacketsPerNode = perNode(idle.udpPackets)
	res.cpuPerNode = perNode((cpuTime() - cpuBefore).Seconds())
	if idle.tcpConns > 0 {
		// Both sides send their state over the initiator's connection.
		res.pushPullBytes = idle.tcpWire() / idle.tcpConns
	}
	idleRate := idle.wire() / elapsed // the cluster's bytes per second

	rng := rand.New(rand.NewPCG(uint64(run.size), 14))
	var joinExcess, crashExcess []float64
	for trial := range run.trials {
		name := fmt.Sprintf("shoal-extra-%03d", trial)
		seed := nodes[rng.IntN(len(nodes))]
		before, start := sink.snapshot(), time.Now()
		extra := startScaleNode(tb, name, run.size+trial, seed.Addr())
		extra.SetDiscovery(Discovery{Config: 1, Targets: 1, Changed: time.Now()})
		res.joinSeen = append(res.joinSeen, waitEach(tb, nodes, func(n *testNode) bool { return knows(n, name) }).Sub(start))
		all := append(slices.Clone(nodes), extra)
		waitAgreed(all, func(n *testNode) bool { return n.Schedule().Final().Has(name) }, run.size+1, &res)
		res.joinAgreed = append(res.joinAgreed, time.Since(start))
		time.Sleep(run.settle)
		joinExcess = append(joinExcess, excess(sink.snapshot().sub(before).wire(), idleRate, time.Since(start)))

		before, start = sink.snapshot(), time.Now()
		extra.kill()
		res.deathSeen = append(res.deathSeen, waitEach(tb, nodes, func(n *testNode) bool { return !knows(n, name) }).Sub(start))
		waitAgreed(nodes, func(n *testNode) bool { return !n.Schedule().Final().Has(name) }, run.size, &res)
		res.deathAgreed = append(res.deathAgreed, time.Since(start))
		time.Sleep(run.settle)
		crashExcess = append(crashExcess, excess(sink.snapshot().sub(before).wire(), idleRate, time.Since(start)))
	}
	// Each crash is one failure on every member; anything more was a live
	// member declared dead.
	res.falseDeaths = failures(nodes) - failuresBefore - float64(run.trials*run.size)
	res.joinBytesPerNode = mean(joinExcess) / float64(run.size)
	res.crashBytesPerNode = mean(crashExcess) / float64(run.size)
	return res
}

// excess is what a window cost beyond the idle rate.
func excess(bytes, idleRate float64, d time.Duration) float64 {
	return max(0, bytes-idleRate*d.Seconds())
}

// scaleName is a member name as long as a typical hostname.
func scaleName(i int) string { return fmt.Sprintf("shoal-agent-%03d", i) }

// startScaleNode starts node number i with the agent's defaults, joining
// seed ("" starts alone). Its metadata is shaped like an agent's: an HTTP
// address of a 127.0.0.0/8 host (nothing connects to it) and a release
// version.
func startScaleNode(tb testing.TB, name string, i int, seed string) *testNode {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.ClusterName = "shoal"
	cfg.BindAddr = "127.0.0.1:0"
	cfg.HTTPAddr = fmt.Sprintf("127.0.%d.%d:9090", i/250, 1+i%250)
	cfg.Version = "0.14.2"
	if seed != "" {
		cfg.Peers = StaticPeers(seed)
	}
	n, err := New(cfg, testLogger(tb), prometheus.NewRegistry())
	require.NoError(tb, err)
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.Run(ctx) }()
	tb.Cleanup(func() { _ = tn.stop() })
	require.Eventually(tb, func() bool { return n.Addr() != "" }, 10*time.Second, 5*time.Millisecond)
	return tn
}

// startScaleCluster starts size nodes joining the first one and waits until
// every one is active in every ring.
func startScaleCluster(tb testing.TB, size int) []*testNode {
	tb.Helper()
	nodes := []*testNode{startScaleNode(tb, scaleName(0), 0, "")}
	for i := 1; i < size; i++ {
		nodes = append(nodes, startScaleNode(tb, scaleName(i), i, nodes[0].Addr()))
	}
	return nodes
}

// stopAll leaves gracefully with every node at once: one after the other,
// each leave waits for its broadcast.
func stopAll(nodes []*testNode) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { _ = n.stop() })
	}
	wg.Wait()
}

// knows reports whether n has name among its alive members; it is what
// Peers lists, read without copying the list.
func knows(n *testNode, name string) bool {
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	_, ok := n.members[name]
	return ok
}

func failures(nodes []*testNode) float64 {
	var f float64
	for _, n := range nodes {
		f += testutil.ToFloat64(n.metrics.failures)
	}
	return f
}

// scalePoll is how often the waits look; the figures are hundreds of
// milliseconds and more, and polling 100 nodes must not load the cores.
const scalePoll = 10 * time.Millisecond

// waitEach returns when cond has held on every node, each checked until it
// held once.
func waitEach(tb testing.TB, nodes []*testNode, cond func(*testNode) bool) time.Time {
	tb.Helper()
	left := slices.Clone(nodes)
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		left = slices.DeleteFunc(left, cond)
		if len(left) == 0 {
			return time.Now()
		}
		time.Sleep(scalePoll)
	}
	tb.Fatalf("%d of %d nodes never got there in 2m", len(left), len(nodes))
	return time.Time{}
}

// agreeTimeout bounds a wait for agreement. A cluster that does not agree
// by then (members wrongly declared dead over and over, in a process
// starved of CPU) is counted in scaleResult.unagreed and the wait's figure
// is the timeout.
const agreeTimeout = time.Minute

// waitAgreed returns true when every node has size members in its final
// ring, cond holds on it (when given) and every member advertises its
// digest; false, counted in res, after agreeTimeout.
func waitAgreed(nodes []*testNode, cond func(*testNode) bool, size int, res *scaleResult) bool {
	deadline := time.Now().Add(agreeTimeout)
	for time.Now().Before(deadline) {
		ok := true
		for _, n := range nodes {
			if n.Schedule().Final().Len() != size || (cond != nil && !cond(n)) {
				ok = false
				break
			}
			if agree, _ := n.Agreement(); !agree {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
		time.Sleep(scalePoll)
	}
	res.unagreed++
	return false
}

func reportDurations(b *testing.B, name string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Milliseconds()), name+"-p50-ms")
	b.ReportMetric(float64(ds[len(ds)-1].Milliseconds()), name+"-max-ms")
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// wireSink adds up memberlist's transport counters, for every node of the
// process (memberlist reports through go-metrics' global sink, without the
// node's name). UDP is counted as the transport receives it, label header
// included: what went over the wire, less IP and UDP headers (28 bytes a
// packet) and what was lost. TCP is what memberlist writes on its streams
// (push/pull, both ways), plus the label header each connection starts
// with.
type wireSink struct {
	gometrics.BlackholeSink
	udpBytes, udpPackets, tcpBytes, tcpConns atomic.Int64
}

// wireCounts is a snapshot of a wireSink.
type wireCounts struct {
	udpBytes, udpPackets, tcpBytes, tcpConns float64
}

// tcpLabelOverhead is the label header of a stream: type, length, "shoal".
const tcpLabelOverhead = float64(2 + len("shoal"))

func (c wireCounts) tcpWire() float64 { return c.tcpBytes + c.tcpConns*tcpLabelOverhead }
func (c wireCounts) wire() float64    { return c.udpBytes + c.tcpWire() }

func (c wireCounts) sub(o wireCounts) wireCounts {
	return wireCounts{c.udpBytes - o.udpBytes, c.udpPackets - o.udpPackets, c.tcpBytes - o.tcpBytes, c.tcpConns - o.tcpConns}
}

func (s *wireSink) snapshot() wireCounts {
	return wireCounts{float64(s.udpBytes.Load()), float64(s.udpPackets.Load()), float64(s.tcpBytes.Load()), float64(s.tcpConns.Load())}
}

func (s *wireSink) IncrCounter(key []string, val float32) { s.IncrCounterWithLabels(key, val, nil) }

func (s *wireSink) IncrCounterWithLabels(key []string, val float32, _ []gometrics.Label) {
	switch strings.Join(key, ".") {
	case "memberlist.udp.received":
		s.udpBytes.Add(int64(val))
		s.udpPackets.Add(1)
	case "memberlist.tcp.sent":
		s.tcpBytes.Add(int64(val))
	case "memberlist.tcp.connect":
		s.tcpConns.Add(1)
	}
}

// installWireSink makes a wireSink go-metrics' global sink until the test
// ends. It starts no goroutine (no runtime metrics).
func installWireSink(tb testing.TB) *wireSink {
	tb.Helper()
	s := &wireSink{}
	cfg := &gometrics.Config{FilterDefault: true, TimerGranularity: time.Millisecond}
	_, err := gometrics.NewGlobal(cfg, s)
	require.NoError(tb, err)
	tb.Cleanup(func() { _, _ = gometrics.NewGlobal(cfg, &gometrics.BlackholeSink{}) })
	return s
}
