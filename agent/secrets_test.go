package agent

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/internal/testenv"
)

// TestLogsHideURLPasswords runs an agent whose remote write goes to a real
// Prometheus receiver requiring basic auth, with the credentials in the
// URL, plus a second remote write that refuses them (so Prometheus logs its
// error with the URL), and a scrape target whose address carries a
// password. The receiver gets the samples, so the credentials were used;
// the logs (at debug level) and the API show the URLs with the password
// masked, never the password.
func TestLogsHideURLPasswords(t *testing.T) {
	testenv.SkipWithout(t, testenv.PrometheusBinary)
	t.Parallel()
	const rwSecret, scrapeSecret = "rw-s3cret-pw", "scrape-s3cret-pw"
	ctx := t.Context()
	rcv, err := testenv.RunReceiver(ctx, testenv.ForTest(t), testenv.ReceiverOptions{BasicAuth: url.UserPassword("shoal", rwSecret)})
	require.NoError(t, err)
	require.Contains(t, rcv.RemoteWriteURL, rwSecret)

	var refused atomic.Int64
	deny := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		refused.Add(1)
		http.Error(w, "bad credentials", http.StatusUnauthorized)
	}))
	t.Cleanup(deny.Close)
	denyURL, err := url.Parse(deny.URL + "/api/v1/write")
	require.NoError(t, err)
	denyURL.User = url.UserPassword("shoal", rwSecret)

	f := startFarm(t, 1)
	good := f.Targets()[0].Addr
	bad := "scraper:" + scrapeSecret + "@" + good
	cfg := staticConfig(map[string][]string{"secret": {good, bad}}) +
		fmt.Sprintf("remote_write:\n  - url: %s\n  - url: %s\n    queue_config: {batch_send_deadline: 500ms, max_backoff: 500ms}\n", rcv.RemoteWriteURL, denyURL)
	a := startAgent(t, agentOptions(t, "secrets", writeConfig(t, cfg)))
	a.waitReady()

	require.Eventually(t, func() bool {
		s, err := rcv.Query(ctx, fmt.Sprintf(`up{job="secret",instance=%q}`, good), time.Now())
		return err == nil && len(s) == 1 && s[0].V == 1
	}, convergeTimeout, pollInterval, "no samples at the receiver: the URL's credentials were not used")
	require.Eventually(t, func() bool { return refused.Load() > 0 }, convergeTimeout, pollInterval)
	require.Eventually(t, func() bool {
		return strings.Contains(a.logs.String(), "Scrape failed")
	}, convergeTimeout, pollInterval, "the target with a password in its address was never scraped")

	var bodies []string
	for _, p := range []string{"/api/v1/targets", "/api/v1/cluster/targets", "/api/v1/cluster/moves", "/api/v1/delivery", "/metrics", "/"} {
		code, body := a.get(p)
		require.Equal(t, http.StatusOK, code, p)
		bodies = append(bodies, body)
	}
	require.NoError(t, a.stop())

	logs := a.logs.String()
	for _, secret := range []string{rwSecret, scrapeSecret} {
		require.NotContains(t, logs, secret)
		for _, b := range bodies {
			require.NotContains(t, b, secret)
		}
	}
	// The URLs were logged, masked: the test saw what it checks.
	require.Contains(t, logs, "shoal:xxxxx@127.0.0.1")
	require.Contains(t, logs, "scraper:xxxxx")
	// /metrics labels remote write's counters with the masked URL.
	require.Contains(t, bodies[4], `url="http://shoal:xxxxx@127.0.0.1`)
	// The page shows the remote-write URLs, masked.
	require.Contains(t, bodies[5], "http://shoal:xxxxx@127.0.0.1")
}

// TestScrapeParamsMasked: a scrape config's params (?token=) show masked in
// /api/v1/targets, /api/v1/cluster/targets and the page, unless
// --web.show-scrape-params; the target is owned and scraped all the same
// (the ownership key and the scrape use the real URL), and the key in
// /api/v1/targets is the one of /api/v1/cluster/targets. The query values
// of a remote-write URL (a receiver's API key) are masked on the page
// either way: the flag is about scrape params.
func TestScrapeParamsMasked(t *testing.T) {
	t.Parallel()
	const secret, rwKey = "params-s3cret", "rw-key-s3cret"
	f := startFarm(t, 1)
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 500ms}
scrape_configs:
  - job_name: params
    params: {token: [%s], module: [http_2xx]}
    static_configs: [{targets: [%q]}]
remote_write:
  - url: http://%s/api/v1/push?api_key=%s
    name: keyed
`, secret, f.Targets()[0].Addr, pageFreeAddr(t), rwKey)
	path := writeConfig(t, cfg)
	for _, show := range []bool{false, true} {
		t.Run(fmt.Sprintf("show=%v", show), func(t *testing.T) {
			t.Parallel()
			opts := agentOptions(t, fmt.Sprintf("params-%v", show), path)
			opts.Web.ShowScrapeParams = show
			a := startAgent(t, opts)
			a.waitReady()
			var tg Targets
			require.Eventually(t, func() bool {
				tg = Targets{}
				return a.getJSON("/api/v1/targets", &tg) == nil && len(tg.ActiveTargets) == 1 && tg.ActiveTargets[0].Health == "up"
			}, convergeTimeout, pollInterval, "the target is not scraped")
			ct, err := a.clusterTargets()
			require.NoError(t, err)
			require.Len(t, ct.Targets, 1)
			require.Equal(t, ct.Targets[0].Key, tg.ActiveTargets[0].Key)
			require.NotEmpty(t, tg.ActiveTargets[0].Key)

			at := tg.ActiveTargets[0]
			_, page := a.get("/")
			_, raw := a.get("/api/v1/targets")
			require.NotContains(t, page, rwKey)
			require.Contains(t, page, "/api/v1/push?api_key=xxxxx", "the page shows the remote-write URL, masked")
			if show {
				require.Contains(t, at.ScrapeURL, "token="+secret)
				require.Equal(t, secret, at.DiscoveredLabels.Get("__param_token"))
				require.Contains(t, ct.Targets[0].URL, "token="+secret)
				require.Contains(t, page, "token="+secret)
				return
			}
			require.Contains(t, at.ScrapeURL, "module=xxxxx")
			require.Contains(t, at.ScrapeURL, "token=xxxxx")
			require.Equal(t, "xxxxx", at.DiscoveredLabels.Get("__param_token"))
			require.Contains(t, ct.Targets[0].URL, "token=xxxxx")
			for _, body := range []string{page, raw, fmt.Sprint(ct)} {
				require.NotContains(t, body, secret)
			}
			require.Contains(t, page, "token=xxxxx")
		})
	}
}

// TestConsulRegistrationFailureIsVisible runs an agent registering in a
// real Consul with ACLs, with a token Consul does not know: the agent stays
// ready, and the failure is a metric, a page banner with Consul's answer and
// a field of /api/v1/cluster/self. Writing the right token into the file
// and reloading (the SIGHUP path) fixes it without a restart; a reload with
// an empty file fails and keeps the running token.
func TestConsulRegistrationFailureIsVisible(t *testing.T) {
	testenv.SkipWithout(t, testenv.ConsulBinary)
	t.Parallel()
	const root = "aaaaaaaa-2222-3333-4444-555555555555"
	consul, err := testenv.RunConsul(t.Context(), testenv.ForTest(t), testenv.ConsulOptions{ACLToken: root})
	require.NoError(t, err)
	admin := consul.Client()
	_, _, err = admin.ACL().PolicyCreate(&api.ACLPolicy{Name: "shoal", Rules: `service "shoal-banner" { policy = "write" }`}, nil)
	require.NoError(t, err)
	good, _, err := admin.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{Name: "shoal"}}}, nil)
	require.NoError(t, err)

	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("00000000-0000-0000-0000-000000000000"), 0o600))
	opts := agentOptions(t, "banner", writeConfig(t, staticConfig(map[string][]string{"a": {"127.0.0.1:1"}})))
	opts.Consul.Address, opts.Consul.TokenFile = consul.Addr, tokenFile
	opts.Registration.Service, opts.Registration.TTL = "shoal-banner", 1500*time.Millisecond
	a := startAgent(t, opts)
	a.waitReady()

	forbidden := func() float64 {
		_, body := a.get("/metrics")
		for _, l := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(l, `shoal_consul_registration_failures_total{reason="forbidden"} `); ok {
				var f float64
				_, _ = fmt.Sscan(v, &f)
				return f
			}
		}
		return -1
	}
	require.Eventually(t, func() bool { return forbidden() >= 2 }, convergeTimeout, pollInterval)
	var self Self
	require.NoError(t, a.getJSON("/api/v1/cluster/self", &self))
	require.True(t, self.Ready, "a failing registration does not make the agent unready")
	require.NotNil(t, self.Consul)
	require.True(t, self.Consul.Failing)
	require.Equal(t, "forbidden", self.Consul.Reason)
	require.Contains(t, self.Consul.Error, "403")
	_, page := a.get("/")
	require.Contains(t, page, `id="consul-registration-failing"`)
	require.Contains(t, page, "ACL not found")
	require.Equal(t, 0.0, a.metric("shoal_consul_registration_last_successful"))

	require.NoError(t, os.WriteFile(tokenFile, []byte(good.SecretID), 0o600))
	require.NoError(t, a.Reload())
	require.Eventually(t, func() bool {
		_, page := a.get("/")
		return !strings.Contains(page, `id="consul-registration-failing"`) && a.metric("shoal_consul_registration_last_successful") == 1
	}, convergeTimeout, pollInterval)
	es, _, err := admin.Health().Service("shoal-banner", "", true, nil)
	require.NoError(t, err)
	require.Len(t, es, 1)

	require.NoError(t, os.WriteFile(tokenFile, nil, 0o600))
	require.ErrorContains(t, a.Reload(), "is empty")
	require.Equal(t, 0.0, a.metric("shoal_config_last_reload_successful"))
	f := forbidden()
	time.Sleep(time.Second) // two renewals with the kept token
	require.Equal(t, f, forbidden())
	require.Equal(t, 1.0, a.metric("shoal_consul_registration_last_successful"))
	require.NotContains(t, a.logs.String(), good.SecretID)
}
