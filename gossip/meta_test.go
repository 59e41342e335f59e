package gossip

import (
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testNow and testLead are the clock and handoff lead the decoder tests check
// claims against.
var testNow = time.UnixMilli(1700000000000)

const testLead = 5 * time.Second

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []Meta{
		{State: StateJoining, Weight: 1},
		{State: StateActive, HTTPAddr: "10.0.0.1:9090", Version: "0.1.0", Digest: 0xdeadbeefcafef00d, Started: time.UnixMilli(1700000000123), Weight: 2.5,
			Since: testNow.Add(testLead)},
		{State: StateLeaving, Digest: 1, Weight: 100, HTTPAddr: "shoal-1.example.org:9090", Until: testNow.Add(MaxRestartGrace)},
		{State: StateActive, Weight: 1, HTTPAddr: "[::1]:9090"},
		{State: StateActive, Weight: 1, Discovery: Discovery{Config: 0xabc, Targets: 1 << 63, Changed: testNow.Add(-time.Minute)}},
		{State: StateActive, Weight: 1, Plan: PlanRef{Version: 7, Digest: 0xfeedface, At: testNow.Add(testLead + planFetchSlack)}},
		{State: StateActive, Weight: 1, Plan: PlanRef{Version: MaxPlanVersion, Digest: 0, At: testNow.Add(-24 * time.Hour)}},
	} {
		b, err := encodeMeta(m)
		require.NoError(t, err)
		got, err := decodeMeta(b, testNow, testLead)
		require.NoError(t, err)
		require.Equal(t, m.State, got.State)
		require.Equal(t, m.HTTPAddr, got.HTTPAddr)
		require.Equal(t, m.Digest, got.Digest)
		require.True(t, m.Started.Equal(got.Started))
		require.True(t, m.Since.Equal(got.Since))
		require.True(t, m.Until.Equal(got.Until))
		require.Equal(t, m.Weight, got.Weight)
		require.Equal(t, m.Discovery.Config, got.Discovery.Config)
		require.Equal(t, m.Discovery.Targets, got.Discovery.Targets)
		require.True(t, m.Discovery.Changed.Equal(got.Discovery.Changed))
		require.True(t, m.Plan.Equal(got.Plan), "plan %+v, got %+v", m.Plan, got.Plan)
	}
}

func TestMetaDecodeErrors(t *testing.T) {
	ms := func(d time.Duration) string { return strconv.FormatInt(testNow.Add(d).UnixMilli(), 10) }
	for _, tc := range []struct {
		in, reason, err string
	}{
		{``, reasonFormat, "empty"},
		{`{`, reasonFormat, "node metadata: decode"},
		{`{"v":0,"s":"active","w":1}`, reasonFormat, "version must be >= 1, got 0"},
		{`{"v":1,"s":"bogus","w":1}`, reasonFormat, `state must be joining, active or leaving, got "bogus"`},
		{`{"v":1,"s":"active","w":1,"d":"xyz"}`, reasonFormat, `digest must be hexadecimal, got "xyz"`},
		{`{"v":1,"s":"active","w":1,"h":"` + strings.Repeat("x", 600) + `"}`, reasonFormat, "limit is 512"},
		// Weights: (0, ring.MaxWeight].
		{`{"v":1,"s":"active","w":-1}`, reasonWeight, "weight must be above 0 and at most 100, got -1"},
		{`{"v":1,"s":"active"}`, reasonWeight, "weight must be above 0 and at most 100, got 0"},
		{`{"v":1,"s":"active","w":1000}`, reasonWeight, "got 1000"},
		{`{"v":1,"s":"active","w":1e9}`, reasonWeight, "weight must be above 0"},
		// HTTP addresses: host:port only.
		{`{"v":1,"s":"active","w":1,"h":"127.0.0.1:9090/x?"}`, reasonAddress, `port must be a number between 0 and 65535, got "9090/x?"`},
		{`{"v":1,"s":"active","w":1,"h":"http://10.0.0.1:9090"}`, reasonAddress, "want host:port"},
		{`{"v":1,"s":"active","w":1,"h":"user:pw@10.0.0.1:9090"}`, reasonAddress, "want host:port"},
		{`{"v":1,"s":"active","w":1,"h":"user@10.0.0.1:9090"}`, reasonAddress, `host must be an IP address or a DNS name, got "user@10.0.0.1"`},
		{`{"v":1,"s":"active","w":1,"h":"evil/x:9090"}`, reasonAddress, "host must be an IP address or a DNS name"},
		{`{"v":1,"s":"active","w":1,"h":"10.0.0.1:+90"}`, reasonAddress, "port must be a number"},
		{`{"v":1,"s":"active","w":1,"h":":9090"}`, reasonAddress, "host must not be empty"},
		{`{"v":1,"s":"active","w":1,"h":"10.0.0.1"}`, reasonAddress, "want host:port"},
		// Instants.
		{`{"v":1,"s":"active","w":1,"a":` + ms(24*time.Hour) + `}`, reasonInstant, "owning instant (since) is 24h0m0s ahead, at most 1m5s is allowed"},
		{`{"v":1,"s":"active","w":1,"a":` + ms(testLead+ClaimSlack+time.Second) + `}`, reasonInstant, "owning instant (since)"},
		{`{"v":1,"s":"leaving","w":1,"u":` + ms(MaxRestartGrace+ClaimSlack+time.Second) + `}`, reasonInstant, "end of ownership (until) is 31m1s ahead, at most 31m0s"},
		{`{"v":1,"s":"active","w":1,"t":` + ms(ClaimSlack+time.Second) + `}`, reasonInstant, "start time is 1m1s ahead"},
		{`{"v":1,"s":"active","w":1,"t":-5}`, reasonInstant, "times must not be negative"},
		{`{"v":1,"s":"active","w":1,"gt":` + ms(ClaimSlack+time.Second) + `}`, reasonInstant, "targets change is 1m1s ahead"},
		{`{"v":1,"s":"active","w":1,"g":"zz"}`, reasonFormat, `targets digest must be hexadecimal, got "zz"`},
		{`{"v":1,"s":"active","w":1,"c":"-1"}`, reasonFormat, `config digest must be hexadecimal`},
		// Plans: a version in [1, MaxPlanVersion] with its digest and
		// instant, or none of the three.
		{`{"v":1,"s":"active","w":1,"pv":3,"pd":"x1","pa":` + ms(0) + `}`, reasonFormat, `plan digest must be hexadecimal, got "x1"`},
		{`{"v":1,"s":"active","w":1,"pv":-3,"pd":"1","pa":` + ms(0) + `}`, reasonFormat, "node metadata: decode"},
		{`{"v":1,"s":"active","w":1,"pv":1.5,"pd":"1","pa":` + ms(0) + `}`, reasonFormat, "node metadata: decode"},
		{`{"v":1,"s":"active","w":1,"pv":18446744073709551615,"pd":"1","pa":` + ms(0) + `}`, reasonPlan, "plan version must be at most 9007199254740991, got 18446744073709551615"},
		{`{"v":1,"s":"active","w":1,"pv":9007199254740992,"pd":"1","pa":` + ms(0) + `}`, reasonPlan, "plan version must be at most"},
		{`{"v":1,"s":"active","w":1,"pv":3,"pa":` + ms(0) + `}`, reasonPlan, "plan 3 has no digest"},
		{`{"v":1,"s":"active","w":1,"pv":3,"pd":"ab"}`, reasonPlan, "plan 3 has no instant"},
		{`{"v":1,"s":"active","w":1,"pd":"ab"}`, reasonPlan, `plan digest "ab" or instant 0 without a plan version`},
		{`{"v":1,"s":"active","w":1,"pa":` + ms(0) + `}`, reasonPlan, "without a plan version"},
		{`{"v":1,"s":"active","w":1,"pv":3,"pd":"ab","pa":-1}`, reasonInstant, "times must not be negative"},
		{`{"v":1,"s":"active","w":1,"pv":3,"pd":"ab","pa":` + ms(testLead+planFetchSlack+ClaimSlack+time.Second) + `}`, reasonInstant, "plan instant is 1m7s ahead, at most 1m6s is allowed"},
		{`{"v":1,"s":"active","w":1,"pv":3,"pd":"ab","pa":` + ms(24*time.Hour) + `}`, reasonInstant, "plan instant is 24h0m0s ahead"},
		// Quarantines: bounded in number, form and length of the hold.
		{`{"v":1,"s":"active","w":1,"q":["a.1.1","b.1.1","c.1.1","d.1.1","e.1.1","f.1.1","10.1.1","11.1.1","12.1.1"]}`, reasonQuarantine, "at most 8 quarantines may be advertised, got 9"},
		{`{"v":1,"s":"active","w":1,"q":["zz.1700000000.1"]}`, reasonQuarantine, "key must be hexadecimal"},
		{`{"v":1,"s":"active","w":1,"f":["a","b","c","d","e"]}`, reasonQuarantine, "at most 4 scrapes in flight may be advertised, got 5"},
		{`{"v":1,"s":"active","w":1,"f":["xyz"]}`, reasonQuarantine, `scrape in flight must be a hexadecimal key, got "xyz"`},
		{`{"v":1,"s":"active","w":1,"q":["ab.1700000000"]}`, reasonQuarantine, "quarantine must be key.until.level"},
		{`{"v":1,"s":"active","w":1,"q":["ab.-4.1"]}`, reasonQuarantine, "until must be positive unix seconds"},
		{`{"v":1,"s":"active","w":1,"q":["ab.1700000000.0"]}`, reasonQuarantine, "level must be between 1 and 31"},
		{`{"v":1,"s":"active","w":1,"q":["ab.1700000000.32"]}`, reasonQuarantine, "level must be between 1 and 31"},
		{`{"v":1,"s":"active","w":1,"q":["` + strings.Repeat("a", 60) + `.1.1"]}`, reasonQuarantine, "quarantine must be key.until.level"},
		{`{"v":1,"s":"active","w":1,"q":["ab.` + strconv.FormatInt(testNow.Add(MaxQuarantineHold+ClaimSlack+time.Second).Unix(), 10) + `.1"]}`, reasonQuarantine,
			"quarantine of 00000000000000ab ends 24h1m1s ahead, at most 24h1m0s is allowed"},
	} {
		t.Run(tc.err, func(t *testing.T) {
			_, err := decodeMeta([]byte(tc.in), testNow, testLead)
			require.ErrorContains(t, err, tc.err)
			require.Equal(t, tc.reason, reasonOf(err))
		})
	}
	// Unknown fields are accepted: a newer agent may add some.
	m, err := decodeMeta([]byte(`{"v":2,"s":"active","w":1,"future":true}`), testNow, testLead)
	require.NoError(t, err)
	require.Equal(t, StateActive, m.State)
	// At the bounds: accepted.
	m, err = decodeMeta([]byte(`{"v":1,"s":"leaving","w":100,"h":"shoal_1:0","a":`+ms(testLead+ClaimSlack)+`,"u":`+ms(MaxRestartGrace+ClaimSlack)+`,"t":`+ms(ClaimSlack)+`}`), testNow, testLead)
	require.NoError(t, err)
	require.Equal(t, 100.0, m.Weight)
	m, err = decodeMeta([]byte(`{"v":1,"s":"active","w":1,"pv":9007199254740991,"pd":"0","pa":`+ms(testLead+planFetchSlack+ClaimSlack)+`}`), testNow, testLead)
	require.NoError(t, err)
	require.Equal(t, uint64(MaxPlanVersion), m.Plan.Version)
	// A longer local lead allows a later instant.
	_, err = decodeMeta([]byte(`{"v":1,"s":"active","w":1,"a":`+ms(2*time.Hour)+`}`), testNow, 2*time.Hour)
	require.NoError(t, err)
}

// TestMetaQuarantines: quarantines round-trip in whole seconds, and only
// as many as fit in memberlist's limit are advertised, the first ones first.
func TestMetaQuarantines(t *testing.T) {
	var qs []Quarantine
	for i := range 12 {
		qs = append(qs, Quarantine{Key: 0xfedcba9876543210 + uint64(i), Until: testNow.Add(time.Duration(i) * time.Hour).Truncate(time.Second), Level: i + 1})
	}
	flying := []uint64{1<<64 - 1, 7, 8, 9, 10}
	b, err := encodeMeta(Meta{State: StateActive, Weight: 1, HTTPAddr: "10.0.0.1:9090", Quarantines: qs, InFlight: flying})
	require.NoError(t, err)
	got, err := decodeMeta(b, testNow, testLead)
	require.NoError(t, err)
	require.Equal(t, flying[:MaxInFlightAdvertised], got.InFlight)
	require.Len(t, got.Quarantines, MaxQuarantinesAdvertised)
	for i, q := range got.Quarantines {
		require.Equal(t, qs[i].Key, q.Key)
		require.True(t, qs[i].Until.Equal(q.Until))
		require.Equal(t, qs[i].Level, q.Level)
	}
	// A long address leaves room for fewer; the longest address and
	// version for none, and the record still fits.
	long := Meta{State: StateActive, Weight: 1, HTTPAddr: strings.Repeat(strings.Repeat("h", 60)+".", 4) + ":9090", Version: strings.Repeat("v", 64),
		Digest: 1<<64 - 1, Started: testNow, Since: testNow, Discovery: Discovery{Config: 1<<64 - 1, Targets: 1<<64 - 1, Changed: testNow}, Quarantines: qs}
	b, err = encodeMeta(long)
	require.NoError(t, err)
	got, err = decodeMeta(b, testNow, testLead)
	require.NoError(t, err)
	require.Empty(t, got.Quarantines)
	b, err = encodeMeta(Meta{State: StateActive, Weight: 1, HTTPAddr: strings.Repeat(strings.Repeat("h", 60)+".", 2) + ":9090", Version: "0.1.0",
		Digest: 1<<64 - 1, Started: testNow, Since: testNow, Discovery: Discovery{Config: 1<<64 - 1, Targets: 1<<64 - 1, Changed: testNow}, Quarantines: qs})
	require.NoError(t, err)
	require.LessOrEqual(t, len(b), maxMetaSize)
	got, err = decodeMeta(b, testNow, testLead)
	require.NoError(t, err)
	require.NotEmpty(t, got.Quarantines)
	require.Less(t, len(got.Quarantines), MaxQuarantinesAdvertised)
	require.Equal(t, qs[0].Key, got.Quarantines[0].Key)
}

func TestMetaEncodeTooLarge(t *testing.T) {
	_, err := encodeMeta(Meta{State: StateActive, HTTPAddr: strings.Repeat("h", 600)})
	require.ErrorContains(t, err, "memberlist allows 512")
}

func TestValidateHTTPAddr(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:9090", "[::1]:9090", "shoal-1:9090", "shoal_1.svc.cluster.local.:9090", "0.0.0.0:0", "10.0.0.1:65535"} {
		require.NoError(t, ValidateHTTPAddr(ok), ok)
	}
	for _, bad := range []string{"", "host", "host:", "host:65536", "host:-1", "host:0x50", "a b:1", "a/b:1", "a?b:1", "a#b:1", "u@h:1", "[fe80::1%eth0]:1",
		"http://h:1", "h:1/", "..:1", "a..b:1", strings.Repeat("a", 64) + ":1", "%41:1"} {
		require.Error(t, ValidateHTTPAddr(bad), bad)
	}
}

// FuzzDecodeMeta: metadata comes from the network. Decoding never panics;
// whatever decodes satisfies every rule a peer's claims must (an HTTP address
// that is host:port only, a weight in (0, MaxWeight], instants within their
// bounds) and re-encodes to something that decodes to the same value.
func FuzzDecodeMeta(f *testing.F) {
	f.Add([]byte(`{"v":1,"s":"active","h":"127.0.0.1:9090","ver":"0.1.0","d":"ff","t":1700000000000,"w":1}`))
	f.Add([]byte(`{"v":1,"s":"leaving","w":2,"u":1700001800000}`))
	f.Add([]byte(`{"v":1,"s":"active","w":1,"a":1700000065000,"h":"shoal-1:9090"}`))
	f.Add([]byte(`{"v":1,"s":"joining","w":1e308}`))
	f.Add([]byte(`{"v":1,"s":"active","w":1000,"a":1700086400000,"h":"127.0.0.1:9090/x?"}`))
	f.Add([]byte(`{"v":1,"s":"active","w":1,"h":"[::1]:80"}`))
	f.Add([]byte(`{"v":1,"s":"active","w":1,"h":"u@h:80"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"v":1,"s":"active","w":1,"c":"1f","g":"abc","gt":1700000000000}`))
	f.Add([]byte(`{"v":1,"s":"active","w":1,"pv":4,"pd":"9f","pa":1700000006000}`))
	f.Add([]byte(`{"v":1,"s":"active","w":1,"pv":18446744073709551615,"pd":"9f","pa":1700000006000}`))
	f.Add([]byte(`{"v":1,"s":"active","w":1,"pd":"9f"}`))
	f.Add([]byte(`{"v":1,"s":"active","w":1,"pv":2,"pa":1}`))
	f.Add([]byte(`{"v":1,"s":"active","w":1,"q":["ab.1700000300.1","ffffffffffffffff.1700003600.2"],"f":["1f"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b, testNow, testLead)
		if err != nil {
			require.Contains(t, metaReasons, reasonOf(err))
			return
		}
		// The rules, checked independently of the decoder's own code.
		require.True(t, m.Weight > 0 && m.Weight <= 100, "weight %v", m.Weight)
		if m.HTTPAddr != "" {
			require.NotContains(t, m.HTTPAddr, "/")
			require.NotContains(t, m.HTTPAddr, "?")
			require.NotContains(t, m.HTTPAddr, "#")
			require.NotContains(t, m.HTTPAddr, "@")
			require.NotContains(t, m.HTTPAddr, "%")
			host, port, err := net.SplitHostPort(m.HTTPAddr)
			require.NoError(t, err)
			require.NotEmpty(t, host)
			_, err = strconv.ParseUint(port, 10, 16) // digits only, at most 65535
			require.NoError(t, err, "port %q", port)
			u, err := url.Parse("http://" + m.HTTPAddr + "/api/v1/cluster/self")
			require.NoError(t, err)
			require.Equal(t, m.HTTPAddr, u.Host)
			require.Equal(t, "/api/v1/cluster/self", u.Path)
			require.Empty(t, u.RawQuery)
			require.Nil(t, u.User)
		}
		require.LessOrEqual(t, m.Started.Sub(testNow), ClaimSlack)
		require.LessOrEqual(t, m.Since.Sub(testNow), testLead+ClaimSlack)
		require.LessOrEqual(t, m.Until.Sub(testNow), MaxRestartGrace+ClaimSlack)
		require.LessOrEqual(t, m.Discovery.Changed.Sub(testNow), ClaimSlack)
		require.LessOrEqual(t, m.Plan.Version, uint64(1<<53-1))
		if m.Plan.Version == 0 {
			require.Zero(t, m.Plan.Digest)
			require.True(t, m.Plan.At.IsZero())
		} else {
			require.False(t, m.Plan.At.IsZero())
			require.Positive(t, m.Plan.At.UnixMilli())
			require.LessOrEqual(t, m.Plan.At.Sub(testNow), testLead+time.Second+ClaimSlack)
		}
		require.LessOrEqual(t, len(m.Quarantines), MaxQuarantinesAdvertised)
		require.LessOrEqual(t, len(m.InFlight), MaxInFlightAdvertised)
		for _, q := range m.Quarantines {
			require.LessOrEqual(t, q.Until.Sub(testNow), MaxQuarantineHold+ClaimSlack)
			require.True(t, q.Level >= 1 && q.Level <= maxQuarantineLevel, "level %d", q.Level)
		}
		enc, err := encodeMeta(m)
		if err != nil {
			// Only size can fail, and only for inputs near the limit.
			require.Contains(t, err.Error(), "memberlist allows")
			return
		}
		m2, err := decodeMeta(enc, testNow, testLead)
		require.NoError(t, err)
		require.Equal(t, m.State, m2.State)
		require.Equal(t, m.HTTPAddr, m2.HTTPAddr)
		require.Equal(t, m.Version, m2.Version)
		require.Equal(t, m.Digest, m2.Digest)
		require.Equal(t, m.Weight, m2.Weight)
		require.Equal(t, m.Started.UnixMilli(), m2.Started.UnixMilli())
		require.Equal(t, m.Since.UnixMilli(), m2.Since.UnixMilli())
		require.Equal(t, m.Until.UnixMilli(), m2.Until.UnixMilli())
		require.True(t, m.Plan.Equal(m2.Plan), "plan %+v re-decodes to %+v", m.Plan, m2.Plan)
	})
}

func TestMustYield(t *testing.T) {
	old, young := time.UnixMilli(1000), time.UnixMilli(2000)
	for _, tc := range []struct {
		name  string
		mine  State
		start time.Time
		other Meta
		me    string
		them  string
		yield bool
	}{
		{"running agent never yields to an older newcomer", StateActive, young, Meta{State: StateJoining, Started: old}, "a:1", "b:1", false},
		{"running agent never yields to a claimed active one", StateActive, young, Meta{State: StateActive, Started: old}, "a:1", "b:1", false},
		{"leaving agent never yields", StateLeaving, young, Meta{State: StateActive, Started: old}, "a:1", "b:1", false},
		{"joining yields to a running member", StateJoining, old, Meta{State: StateActive, Started: young}, "a:1", "b:1", true},
		{"joining yields to a leaving member", StateJoining, old, Meta{State: StateLeaving, Started: young}, "a:1", "b:1", true},
		{"both joining: younger yields", StateJoining, young, Meta{State: StateJoining, Started: old}, "a:1", "b:1", true},
		{"both joining: older stays", StateJoining, old, Meta{State: StateJoining, Started: young}, "a:1", "b:1", false},
		{"both joining: unknown age, stay", StateJoining, old, Meta{State: StateJoining}, "a:1", "b:1", false},
		{"both joining: tie, larger address yields", StateJoining, old, Meta{State: StateJoining, Started: old}, "b:1", "a:1", true},
		{"both joining: tie, smaller address stays", StateJoining, old, Meta{State: StateJoining, Started: old}, "a:1", "b:1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.yield, mustYield(tc.mine, tc.start, tc.other, tc.me, tc.them))
		})
	}
}
