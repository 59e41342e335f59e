// Package archtest keeps shoal's dependency direction (see STYLE.md):
//
//	cmd -> agent -> gossip -> gossip/ring
//	             -> sd     -> prometheus/discovery
//	             -> scrape -> prometheus/scrape, storage
//
// Nothing imports agent or cmd; gossip, sd and scrape do not import each
// other; gossip/ring imports only the standard library and xxhash; only the
// supported service discovery mechanisms are linked in.
package archtest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const mod = "github.com/shoal-dev/shoal"

type pkg struct {
	ImportPath string
	Deps       []string
	Imports    []string
}

func list(t *testing.T, pattern string) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", pattern).Output()
	require.NoError(t, err)
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		require.NoError(t, dec.Decode(&p))
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestDependencyDirection(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the module")
	}
	forbidden := map[string][]string{
		mod + "/gossip":      {mod + "/agent", mod + "/cmd", mod + "/sd", mod + "/scrape", "github.com/prometheus/prometheus"},
		mod + "/gossip/ring": {mod + "/", "github.com/hashicorp/memberlist", "github.com/prometheus/"},
		mod + "/sd":          {mod + "/agent", mod + "/cmd", mod + "/gossip", mod + "/scrape"},
		mod + "/scrape":      {mod + "/agent", mod + "/cmd", mod + "/gossip", mod + "/sd"},
		mod + "/agent":       {mod + "/cmd"},
	}
	// Service discovery mechanisms shoal supports; discovery/install would
	// link every other one (~70 MB).
	sdAllowed := map[string]bool{
		"consul": true, "file": true, "http": true, "dns": true, "targetgroup": true, "refresh": true,
	}
	for _, p := range list(t, mod+"/...") {
		if !strings.HasPrefix(p.ImportPath, mod+"/") || strings.Contains(p.ImportPath, "/internal/") {
			continue
		}
		for _, dep := range p.Deps {
			for prefix, bad := range forbidden {
				if p.ImportPath != prefix {
					continue
				}
				for _, b := range bad {
					if strings.HasPrefix(dep, b) && dep != p.ImportPath && !strings.HasPrefix(dep, p.ImportPath+"/") {
						t.Errorf("%s must not depend on %s (found %s)", p.ImportPath, b, dep)
					}
				}
			}
			if rest, ok := strings.CutPrefix(dep, "github.com/prometheus/prometheus/discovery/"); ok {
				name := strings.SplitN(rest, "/", 2)[0]
				if !sdAllowed[name] {
					t.Errorf("%s links unsupported service discovery %s", p.ImportPath, dep)
				}
			}
		}
	}
	// gossip/ring: standard library and xxhash only.
	for _, p := range list(t, mod+"/gossip/ring") {
		for _, imp := range p.Imports {
			if strings.Contains(imp, ".") && imp != "github.com/cespare/xxhash/v2" {
				t.Errorf("gossip/ring imports %s; it must stay pure (stdlib + xxhash)", imp)
			}
		}
	}
}
