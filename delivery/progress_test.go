package delivery

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestProgress: the acknowledged samples are counted, the newest delivered
// timestamp follows the sends, and a failure is kept with its time after
// the sends succeed again (Status' LastError is cleared then).
func TestProgress(t *testing.T) {
	rcv := newStrictReceiver()
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	s, _ := open(t, t.TempDir(), testConfig(t, srv.URL), Options{SegmentBytes: 4 << 10, MaxBytes: 16 << 10})
	defer func() { require.NoError(t, s.Close(time.Second)) }()

	p := s.Progress()
	require.Equal(t, []Progress{{Name: "rcv"}}, p, "nothing sent yet")

	for ts := int64(1000); ts <= 3000; ts += 1000 {
		require.NoError(t, scrape(t, s, 10, ts))
	}
	require.Eventually(t, func() bool { return s.Progress()[0].SentSamples == 30 }, 10*time.Second, 5*time.Millisecond)
	p = s.Progress()
	require.Equal(t, time.UnixMilli(3000), p[0].NewestSent)
	require.Empty(t, p[0].LastError)
	require.True(t, p[0].LastErrorTime.IsZero())

	rcv.setDown(true)
	before := time.Now()
	require.NoError(t, scrape(t, s, 10, 4000))
	require.Eventually(t, func() bool { return s.Progress()[0].LastError != "" }, 10*time.Second, 5*time.Millisecond)
	p = s.Progress()
	require.Contains(t, p[0].LastError, "503")
	require.False(t, p[0].LastErrorTime.Before(before), "the failure's time, %s, is after the outage began, %s", p[0].LastErrorTime, before)
	require.Equal(t, uint64(30), p[0].SentSamples, "a failed request is not counted")
	require.Equal(t, time.UnixMilli(3000), p[0].NewestSent)

	// Past the size limit the oldest unsent samples are deleted, counted.
	for ts := int64(5000); ts < 400_000; ts += 1000 {
		require.NoError(t, scrape(t, s, 10, ts))
	}
	p = s.Progress()
	require.Positive(t, p[0].DroppedSamples)

	rcv.setDown(false)
	require.Eventually(t, func() bool {
		p = s.Progress()
		return p[0].NewestSent.Equal(time.UnixMilli(399_000))
	}, 10*time.Second, 5*time.Millisecond, "the newest scrape is delivered")
	require.Equal(t, uint64(rcv.count()), p[0].SentSamples, "every sample the receiver has was counted once")
	require.Contains(t, p[0].LastError, "503", "the last failure stays")
	require.Empty(t, s.Status()[0].LastError, "while the status says the endpoint is healthy")
}
