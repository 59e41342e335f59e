package bench

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestGate(t *testing.T) {
	var got int
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got++
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	g, err := startGate(rcv.URL)
	require.NoError(t, err)
	defer func() { require.NoError(t, g.Close()) }()

	post := func() int {
		resp, err := http.Post(g.url+"/api/v1/write", "application/x-protobuf", strings.NewReader("x"))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		require.NoError(t, resp.Body.Close())
		return resp.StatusCode
	}
	require.Equal(t, http.StatusNoContent, post())
	g.closed.Store(true)
	require.Equal(t, http.StatusServiceUnavailable, post(), "a closed gate is an outage")
	require.Equal(t, 1, got, "nothing reaches the receiver while the gate is closed")
	g.closed.Store(false)
	require.Equal(t, http.StatusNoContent, post())
	require.Equal(t, 2, got)
}

func replayResult(run string, rep int, replay time.Duration, samples float64) ReplayResult {
	return ReplayResult{
		Run: run, Rep: rep, Label: "replay-" + run, Outage: 2 * time.Minute, Interval: 5 * time.Second,
		Series: 100_000, Samples: samples, Replay: replay, Complete: samples >= 2_400_000,
		CPU: 12 * time.Second, HWM: 3e8,
	}
}

func TestWriteReplayReport(t *testing.T) {
	r := replayResult(RunShoal, 1, 10*time.Second, 2_400_000)
	require.InDelta(t, 1, r.Completeness(), 1e-9, "24 intervals of 100,000 series")
	require.InDelta(t, 240_000, r.SamplesPerSecond(), 1e-9)
	require.InDelta(t, 5, r.CPUPerMSample(), 1e-9)
	require.Contains(t, r.RawLine(), "REPLAY run=shoal rep=1 label=replay-shoal outage_s=120 series=100000 samples=2400000 replay_s=10.00 complete=true completeness=1.0000 samples_per_s=240000 ")

	var rs []ReplayResult
	for rep := 1; rep <= 3; rep++ {
		f := time.Duration(rep)
		rs = append(rs,
			replayResult(RunShoal, rep, 10*time.Second*f, 2_400_000),
			replayResult(RunPrometheus, rep, 20*time.Second*f, 2_400_000),
			replayResult(RunVMAgent, rep, 40*time.Second*f, 1_200_000),
		)
	}
	var b bytes.Buffer
	WriteReplayReport(&b, rs, 3)
	out := b.String()
	t.Log("\n" + out)
	require.Regexp(t, `REPLAYTABLE replay_s\s+20\.00 \(10\.00–30\.00\)\s+40\.00 \(20\.00–60\.00\)\s+80\.00 \(40\.00–120\.00\)`, out)
	require.Regexp(t, `REPLAYRATIO metric\s+shoal/prometheus\s+shoal/vmagent`, out)
	require.Regexp(t, `REPLAYRATIO replay_s\s+0\.500 \(0\.500–0\.500\)\s+0\.250 \(0\.250–0\.250\)`, out)
	require.Regexp(t, `REPLAYTABLE completeness\s+1\.0000 \(1\.0000–1\.0000\)\s+1\.0000 \(1\.0000–1\.0000\)\s+0\.5000`, out)
	require.NotContains(t, out, "REPLAYRATIO completeness")
}
