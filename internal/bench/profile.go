package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/shoal-dev/shoal/internal/testenv"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// pprofFlag is the flag a shoal built with pprofOverlay takes out of its
// arguments before shoal parses them.
const pprofFlag = "--bench.pprof-address"

// pprofOverlay is added to cmd/shoal with `go build -overlay`, because
// shoal does not serve /debug/pprof (agent/web.go has no pprof handlers).
// It leaves the repository alone and changes nothing else in the binary:
// given --bench.pprof-address, it serves net/http/pprof's handlers on
// http.DefaultServeMux there, which shoal's own server does not use.
const pprofOverlay = `package main

import (
	"net/http"
	_ "net/http/pprof" // handlers on http.DefaultServeMux
	"os"
	"strings"
	"time"
)

func init() {
	for i, a := range os.Args {
		if addr, ok := strings.CutPrefix(a, "` + pprofFlag + `="); ok {
			os.Args = append(os.Args[:i:i], os.Args[i+1:]...)
			srv := &http.Server{Addr: addr, ReadHeaderTimeout: 10 * time.Second}
			go func() { _ = srv.ListenAndServe() }()
			return
		}
	}
}
`

// BuildPprofShoal builds cmd/shoal of the repository at root, with
// pprofOverlay, to out.
func BuildPprofShoal(ctx context.Context, goBin, root, out string) error {
	dir, err := os.MkdirTemp("", "shoal-bench-overlay-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	src := filepath.Join(dir, "pprof.go")
	if err := os.WriteFile(src, []byte(pprofOverlay), 0o644); err != nil {
		return err
	}
	overlay, err := json.Marshal(map[string]map[string]string{
		"Replace": {filepath.Join(root, "cmd", "shoal", "zz_bench_pprof.go"): src},
	})
	if err != nil {
		return err
	}
	ov := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(ov, overlay, 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-overlay="+ov, "-o", out, "./cmd/shoal")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -overlay ./cmd/shoal: %w\n%s", err, b)
	}
	return nil
}

// fetchProfile GETs a /debug/pprof profile into file.
func fetchProfile(ctx context.Context, url, file string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return f.Close()
}

// profileTops are the listings printed per profile: the top functions by
// flat and by cumulative cost, and shoal's own functions by cumulative cost.
var profileTops = []struct {
	title string
	opts  []string
}{
	{"top 15 by flat", []string{"-nodecount=15"}},
	{"top 15 by cum", []string{"-nodecount=15", "-cum"}},
	{"shoal's own functions, top 15 by cum", []string{"-nodecount=15", "-cum", `-show=^(github\.com/shoal-dev/shoal/|main\.)`}},
}

// writeTops prints the listings of a profile file.
func writeTops(ctx context.Context, w io.Writer, goBin, file, kind string, extra ...string) error {
	for _, t := range profileTops {
		top, err := PprofTop(ctx, goBin, file, append(extra, t.opts...)...)
		if err != nil {
			return err
		}
		fmt.Fprintln(w)
		top.Format(w, fmt.Sprintf("PROFILE %s %s (%s)", kind, t.title, filepath.Base(file)))
	}
	return nil
}

// pprofShoal builds the pprof binary once and returns its path.
func (b *Bench) pprofShoal(ctx context.Context) (string, error) {
	if b.pprofBin != "" {
		return b.pprofBin, nil
	}
	if b.cfg.GoBin == "" || b.cfg.RepoRoot == "" {
		return "", fmt.Errorf("building shoal with pprof needs the go command and the repository")
	}
	out := filepath.Join(b.dir, "shoal-pprof")
	b.logf("building %s (cmd/shoal with /debug/pprof, go build -overlay)", out)
	if err := BuildPprofShoal(ctx, b.cfg.GoBin, b.cfg.RepoRoot, out); err != nil {
		return "", err
	}
	b.pprofBin = out
	return out, nil
}

// runProfile runs one shoal agent as the shoal run does, built with
// /debug/pprof, and takes a CPU profile of profileSeconds and a heap
// profile in its steady state. It prints their top functions.
func (b *Bench) runProfile(ctx context.Context) error {
	bin, err := b.pprofShoal(ctx)
	if err != nil {
		return err
	}
	const label = "profile"
	port, err := testenv.Port()
	if err != nil {
		return err
	}
	addr := testenv.Loopback(port)
	p, err := b.newShoal(bin, label, b.scrapeConfig(label, b.cfg.Interval, serviceSingle), addr)
	if err != nil {
		return err
	}
	defer func() { _ = p.stop() }()
	if err := p.start(ctx); err != nil {
		return err
	}
	if err := b.waitDelivering(ctx, label, b.cfg.Targets, []*subject{p}); err != nil {
		return err
	}
	if err := sleep(ctx, warmupIntervals*b.cfg.Interval); err != nil {
		return err
	}
	b.logf("profiling %s: CPU for %ds, then heap", label, profileSeconds)
	cpuFile := filepath.Join(b.cfg.Out, "cpu.pprof")
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, profileSeconds)
	if err := fetchProfile(ctx, url, cpuFile, 2*profileSeconds*time.Second); err != nil {
		return err
	}
	heapFile := filepath.Join(b.cfg.Out, "heap.pprof")
	if err := fetchProfile(ctx, "http://"+addr+"/debug/pprof/heap", heapFile, time.Minute); err != nil {
		return err
	}
	fmt.Fprintf(b.raw, "\nPROFILE shoal agent, %d targets × %d series every %v; files %s, %s\n", b.cfg.Targets, b.cfg.Series, b.cfg.Interval, cpuFile, heapFile)
	if err := writeTops(ctx, b.raw, b.cfg.GoBin, cpuFile, "cpu"); err != nil {
		return err
	}
	if err := writeTops(ctx, b.raw, b.cfg.GoBin, heapFile, "heap inuse_space", "-sample_index=inuse_space"); err != nil {
		return err
	}
	return writeTops(ctx, b.raw, b.cfg.GoBin, heapFile, "heap alloc_space", "-sample_index=alloc_space")
}
