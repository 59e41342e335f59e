package agent

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/scrape"
)

// TestDiscoveredLabelsHideTheKey checks that /api/v1/targets shows what
// discovery found, not the key the filter adds for the fence.
func TestDiscoveredLabelsHideTheKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		disc model.LabelSet
		want labels.Labels
		key  string
	}{
		{"with key", model.LabelSet{model.AddressLabel: "h:80", scrape.KeyLabel: "0123456789abcdef", "dc": "x"}, labels.FromStrings(model.AddressLabel, "h:80", "dc", "x"), "0123456789abcdef"},
		{"without key", model.LabelSet{model.AddressLabel: "h:80"}, labels.FromStrings(model.AddressLabel, "h:80"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tgt := promscrape.NewTarget(labels.FromStrings(model.AddressLabel, "h:80"), &config.ScrapeConfig{}, tc.disc, nil)
			got, key := discoveredLabels(tgt, labels.NewBuilder(labels.EmptyLabels()))
			require.Empty(t, got.Get(scrape.KeyLabel))
			require.Equal(t, tc.key, key)
			tc.want.Range(func(l labels.Label) { require.Equal(t, l.Value, got.Get(l.Name), l.Name) })
		})
	}
}

// TestGossipKeysReloadWithTheConfig: POST /-/reload (and SIGHUP, which calls
// Reload) re-reads the gossip keyring; /api/v1/cluster/self and /metrics show
// it; a bad key file fails the reload and keeps the running keys.
func TestGossipKeysReloadWithTheConfig(t *testing.T) {
	keyA := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	keyB := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	fp := func(k string) string {
		b, _ := base64.StdEncoding.DecodeString(k)
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:4])
	}
	keyFile := filepath.Join(t.TempDir(), "gossip.key")
	require.NoError(t, os.WriteFile(keyFile, []byte(keyA+"\n"), 0o600))
	opts := agentOptions(t, "keys", writeConfig(t, staticConfig(nil)))
	opts.Web.EnableLifecycle = true
	opts.Gossip.SecretKeyFile = keyFile
	a := startAgent(t, opts)
	a.waitReady()
	self := func() GossipSecurity {
		var s Self
		require.NoError(t, a.getJSON("/api/v1/cluster/self", &s))
		return s.Gossip
	}
	require.Equal(t, GossipSecurity{Encrypted: true, Keys: 1, Encrypts: fp(keyA)}, self())
	require.Equal(t, 1.0, a.metric("shoal_cluster_gossip_keys"))

	require.NoError(t, os.WriteFile(keyFile, []byte(keyB+"\n"+keyA+"\n"), 0o600))
	code, body := a.post("/-/reload")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, GossipSecurity{Encrypted: true, Keys: 2, Encrypts: fp(keyB)}, self())
	require.Equal(t, 2.0, a.metric("shoal_cluster_gossip_keys"))
	require.Equal(t, 1.0, a.metric("shoal_config_last_reload_successful"))

	require.NoError(t, os.WriteFile(keyFile, []byte("# nothing\n"), 0o600))
	code, body = a.post("/-/reload")
	require.Equal(t, http.StatusInternalServerError, code, body)
	require.Contains(t, body, "reload gossip keyring: --cluster.secret-key-file")
	require.Equal(t, 0.0, a.metric("shoal_config_last_reload_successful"))
	require.Equal(t, GossipSecurity{Encrypted: true, Keys: 2, Encrypts: fp(keyB)}, self(), "the running keys stay")
	require.Error(t, a.Reload(), "SIGHUP path")
	a.waitReady()
}

// TestInsecureShows: --cluster.insecure shows on /api/v1/cluster/self and
// /metrics.
func TestInsecureShows(t *testing.T) {
	opts := agentOptions(t, "insecure", writeConfig(t, staticConfig(nil)))
	opts.Gossip.Insecure = true
	a := startAgent(t, opts)
	a.waitReady()
	var s Self
	require.NoError(t, a.getJSON("/api/v1/cluster/self", &s))
	require.Equal(t, GossipSecurity{Insecure: true}, s.Gossip)
	require.Equal(t, 1.0, a.metric("shoal_cluster_gossip_insecure"))
	require.Equal(t, 0.0, a.metric("shoal_cluster_gossip_keys"))
	_, page := a.get("/")
	require.Contains(t, page, "Gossip is not authenticated (--cluster.insecure)")
}
