//go:build linux

package dockertest

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/internal/e2e"
)

// docker runs the docker CLI for one test; everything it creates carries
// label, and t.Cleanup removes it (printing the containers' logs first when
// the test failed).
type docker struct {
	t           *testing.T
	id, label   string
	work        string
	buildkitOff bool
	extraImages []string
}

func newDocker(t *testing.T) *docker {
	id := fmt.Sprintf("shoal-dt-%d-%d", os.Getpid(), rand.IntN(1<<16))
	d := &docker{t: t, id: id, label: "dev.shoal.docker-test=" + id, work: t.TempDir()}
	d.buildkitOff = exec.Command("docker", "buildx", "version").Run() != nil
	t.Cleanup(d.cleanup)
	return d
}

func (d *docker) image(name string) string { return d.id + ":" + name }

// run runs docker with args and returns its trimmed stdout.
func (d *docker) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	if d.buildkitOff {
		cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0") // the classic builder
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args[:min(len(args), 3)], " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

func (d *docker) cleanup() {
	ctx := context.Background()
	ids, _ := d.run(ctx, "ps", "-aq", "--filter", "label="+d.label)
	for _, c := range strings.Fields(ids) {
		if d.t.Failed() {
			name, _ := d.run(ctx, "inspect", "-f", "{{.Name}}", c)
			logs, _ := exec.Command("docker", "logs", "--tail", "40", c).CombinedOutput()
			d.t.Logf("logs of %s:\n%s", name, logs)
		}
		_, _ = d.run(ctx, "rm", "-f", "-v", c)
	}
	nets, _ := d.run(ctx, "network", "ls", "-q", "--filter", "label="+d.label)
	for _, n := range strings.Fields(nets) {
		_, _ = d.run(ctx, "network", "rm", n)
	}
	for _, img := range append([]string{d.image("shoal"), d.image("farm"), d.image("builder")}, d.extraImages...) {
		_, _ = d.run(ctx, "image", "rm", "-f", img)
	}
}

// builderStage matches the Dockerfile's builder stage, from its FROM line
// to the next FROM.
var builderStage = regexp.MustCompile(`(?ms)^FROM[ \t].*[ \t][Aa][Ss][ \t]+builder[ \t]*$.*?(^FROM[ \t])`)

// buildImages builds shoal and shoal-farm on the host and the Dockerfile's
// runtime stages around them: the builder stage's stand-in holds what the
// runtime stages copy from it, /out/ and the CA bundle.
func (d *docker) buildImages(ctx context.Context, root, version string) error {
	bctx := filepath.Join(d.work, "context")
	for _, dir := range []string{"rootfs/out/data", "rootfs/etc/ssl/certs", "deploy"} {
		if err := os.MkdirAll(filepath.Join(bctx, dir), 0o755); err != nil {
			return err
		}
	}
	for _, cmd := range []string{"shoal", "shoal-farm"} {
		b := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version,
			"-o", filepath.Join(bctx, "rootfs/out", cmd), "./cmd/"+cmd)
		b.Dir, b.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := b.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w: %s", cmd, err, out)
		}
	}
	var certs []byte
	for _, f := range []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"} {
		if b, err := os.ReadFile(f); err == nil {
			certs = b
			break
		}
	}
	if certs == nil {
		return fmt.Errorf("no CA certificate bundle on this host")
	}
	if err := os.WriteFile(filepath.Join(bctx, "rootfs/etc/ssl/certs/ca-certificates.crt"), certs, 0o644); err != nil {
		return err
	}
	if out, err := exec.Command("cp", "-r", filepath.Join(root, "deploy/image"), filepath.Join(bctx, "deploy/image")).CombinedOutput(); err != nil {
		return fmt.Errorf("copy deploy/image: %w: %s", err, out)
	}
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		return err
	}
	if !builderStage.Match(df) {
		return fmt.Errorf("Dockerfile has no 'FROM ... AS builder' stage followed by another")
	}
	df = builderStage.ReplaceAll(df, []byte("FROM scratch AS builder\nCOPY rootfs/ /\n$1"))
	if err := os.WriteFile(filepath.Join(bctx, "Dockerfile"), df, 0o644); err != nil {
		return err
	}
	// The stand-in builder stage gets a tag too, or the classic builder
	// would leave it behind as a dangling image.
	for _, target := range []string{"builder", "farm", "shoal"} {
		if _, err := d.run(ctx, "build", "--quiet", "--label", d.label, "--build-arg", "VERSION="+version,
			"--target", target, "-t", d.image(target), "-f", filepath.Join(bctx, "Dockerfile"), bctx); err != nil {
			return err
		}
	}
	return nil
}

// scratchImage builds an image FROM scratch holding one static binary.
func (d *docker) scratchImage(ctx context.Context, name, bin string) (string, error) {
	dir := filepath.Join(d.work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if out, err := exec.Command("cp", bin, filepath.Join(dir, name)).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copy %s: %w: %s", bin, err, out)
	}
	df := fmt.Sprintf("FROM scratch\nCOPY %s /bin/%s\nENTRYPOINT [\"/bin/%s\"]\n", name, name, name)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return "", err
	}
	img := d.image(name)
	d.extraImages = append(d.extraImages, img)
	_, err := d.run(ctx, "build", "--quiet", "--label", d.label, "-t", img, dir)
	return img, err
}

func (d *docker) checkMetadata(t *testing.T, version string) {
	ctx := t.Context()
	for _, c := range []struct{ image, format, want string }{
		{"shoal", "{{.Config.User}}", "65532:65532"},
		{"shoal", "{{json .Config.Entrypoint}}", `["/bin/shoal"]`},
		{"shoal", "{{json .Config.Cmd}}", `["--config.file=/etc/shoal/shoal.yml","--storage.path=/data"]`},
		{"shoal", "{{json .Config.ExposedPorts}}", `{"7946/tcp":{},"7946/udp":{},"9090/tcp":{}}`},
		{"shoal", "{{json .Config.Volumes}}", `{"/data":{}}`},
		{"farm", "{{.Config.User}}", "65532:65532"},
	} {
		got, err := d.run(ctx, "image", "inspect", "-f", c.format, d.image(c.image))
		require.NoError(t, err)
		require.Equal(t, c.want, got, "image %s: %s", c.image, c.format)
	}
	out, err := exec.CommandContext(ctx, "docker", "run", "--rm", "--network", "none", "--label", d.label, d.image("shoal"), "--version").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), version)
	t.Logf("image metadata ok: user 65532, ports 9090 7946/tcp 7946/udp, volume /data, version %s", version)
}

// createWithConfig creates container name with args (options, image and
// command), copies cfg to path in it (docker cp instead of a bind mount:
// works with a remote engine too), runs before (e.g. network connects) and
// starts it.
func (d *docker) createWithConfig(ctx context.Context, name, path, cfg string, before func() error, args ...string) error {
	if _, err := d.run(ctx, append([]string{"create", "--name", name, "--label", d.label}, args...)...); err != nil {
		return err
	}
	f := filepath.Join(d.work, name+filepath.Ext(path))
	if err := os.WriteFile(f, []byte(cfg), 0o644); err != nil {
		return err
	}
	if _, err := d.run(ctx, "cp", f, name+":"+path); err != nil {
		return err
	}
	if before != nil {
		if err := before(); err != nil {
			return err
		}
	}
	_, err := d.run(ctx, "start", name)
	return err
}

// publishedPort returns the loopback host port published for the
// container's port.
func (d *docker) publishedPort(ctx context.Context, c string, port int) (string, error) {
	out, err := d.run(ctx, "port", c, fmt.Sprintf("%d/tcp", port))
	if err != nil {
		return "", err
	}
	for _, l := range strings.Fields(out) {
		if p, ok := strings.CutPrefix(l, "127.0.0.1:"); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s publishes no loopback port for %d: %q", c, port, out)
}

// waitReady waits until the container's /-/ready (port 9090) answers 200,
// failing early when it exits.
func (d *docker) waitReady(ctx context.Context, c string) error {
	port, err := d.publishedPort(ctx, c, 9090)
	if err != nil {
		return err
	}
	cl := e2e.NewClient(c, "http://127.0.0.1:"+port)
	defer cl.CloseIdleConnections()
	return e2e.Poll(ctx, readyTimeout, 500*time.Millisecond, func(ctx context.Context) error {
		if running, _ := d.run(ctx, "inspect", "-f", "{{.State.Running}}", c); running != "true" {
			return fmt.Errorf("%s is not running", c)
		}
		return cl.Ready(ctx)
	})
}

// readyClients waits until every container is ready and returns API
// clients for them.
func (d *docker) readyClients(t *testing.T, containers []string) []*e2e.Client {
	ctx := t.Context()
	var out []*e2e.Client
	t0 := time.Now()
	for _, c := range containers {
		require.NoError(t, d.waitReady(ctx, c))
		port, err := d.publishedPort(ctx, c, 9090)
		require.NoError(t, err)
		cl := e2e.NewClient(c, "http://127.0.0.1:"+port)
		t.Cleanup(cl.CloseIdleConnections)
		out = append(out, cl)
	}
	t.Logf("%d agents ready after %v", len(containers), time.Since(t0).Round(time.Second))
	return out
}

// gossipKeyPath is where copyKey puts the fleet's gossip key in a container;
// keyFlag points the agent at it. Containers gossip on a Docker network, not
// loopback, so an agent without a key (or --cluster.insecure) refuses to start.
const (
	gossipKeyPath = "/etc/shoal/gossip.key"
	keyFlag       = "--cluster.secret-key-file=" + gossipKeyPath
)

// copyKey copies the test's gossip key (made once, 32 random bytes in
// base64) into the created container name.
func (d *docker) copyKey(ctx context.Context, name string) error {
	f := filepath.Join(d.work, "gossip.key")
	if _, err := os.Stat(f); err != nil {
		key := make([]byte, 32)
		for i := range key {
			key[i] = byte(rand.IntN(256))
		}
		// Readable by the image's non-root user once copied in.
		if err := os.WriteFile(f, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o644); err != nil {
			return err
		}
	}
	_, err := d.run(ctx, "cp", f, name+":"+gossipKeyPath)
	return err
}
