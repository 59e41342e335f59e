//go:build linux

package swarmtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/e2e"
	"github.com/shoal-dev/shoal/internal/testenv"
)

// cli runs the docker CLI for one test. Everything it creates is named
// after id (images id:NAME, the stack id) and removed by cleanup.
type cli struct {
	t           *testing.T
	id          string
	work        string
	buildkitOff bool
	images      []string
}

func newCLI(t *testing.T) *cli {
	c := &cli{t: t, id: fmt.Sprintf("shoalswarm%d", os.Getpid()), work: t.TempDir()}
	c.buildkitOff = exec.Command("docker", "buildx", "version").Run() != nil
	return c
}

// run runs docker with args in dir (the working directory when empty) with
// extra environment variables, and returns its trimmed stdout.
func (c *cli) runIn(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if c.buildkitOff {
		cmd.Env = append(cmd.Env, "DOCKER_BUILDKIT=0") // the classic builder
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args[:min(len(args), 4)], " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

func (c *cli) run(ctx context.Context, args ...string) (string, error) {
	return c.runIn(ctx, "", nil, args...)
}

func (c *cli) image(name string) string { return c.id + ":" + name }

// swarmState is what `docker info` says about this engine's swarm.
type swarmState struct {
	node    string // inactive, pending, active, error, locked
	manager bool
}

func (c *cli) swarmState(ctx context.Context) (swarmState, error) {
	out, err := c.run(ctx, "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}")
	if err != nil {
		return swarmState{}, err
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return swarmState{}, fmt.Errorf("docker info: unexpected swarm state %q", out)
	}
	return swarmState{node: f[0], manager: f[1] == "true"}, nil
}

// requireSwarm makes sure this engine is a swarm manager: it uses the swarm
// there is, or initialises a single-node one on 127.0.0.1 and leaves it
// again when the test ends (t.Cleanup; registered first, so it runs after
// every other cleanup). Without a Docker engine, or on a worker node, it
// skips the test, or fails it under SHOAL_REQUIRE_INTEGRATION=1.
func (c *cli) requireSwarm(t *testing.T) {
	t.Helper()
	unusable := func(format string, args ...any) {
		t.Helper()
		msg := "swarmtest: " + fmt.Sprintf(format, args...)
		if os.Getenv(testenv.EnvRequireIntegration) == "1" {
			t.Fatal(msg + "; failing because " + testenv.EnvRequireIntegration + "=1")
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	st, err := c.swarmState(ctx)
	if err != nil {
		unusable("no Docker engine: %v", err)
	}
	switch {
	case st.node == "inactive":
		if _, err := c.run(ctx, "swarm", "init", "--advertise-addr", "127.0.0.1"); err != nil {
			unusable("cannot initialise a swarm: %v", err)
		}
		t.Log("initialised a single-node swarm on 127.0.0.1; it is left again at the end")
		t.Cleanup(func() {
			if _, err := c.run(context.Background(), "swarm", "leave", "--force"); err != nil {
				t.Errorf("leave the swarm this test initialised: %v", err)
			}
		})
	case st.node == "active" && st.manager:
		t.Log("using the swarm this engine is a manager of; it stays")
	default:
		unusable("this engine's swarm is %q (manager: %t): need an inactive engine or a manager", st.node, st.manager)
	}
}

// builderStage matches the Dockerfile's builder stage, from its FROM line
// to the next FROM (as internal/dockertest does).
var builderStage = regexp.MustCompile(`(?ms)^FROM[ \t].*[ \t][Aa][Ss][ \t]+builder[ \t]*$.*?(^FROM[ \t])`)

// buildImages builds shoal and shoal-farm on the host and the Dockerfile's
// runtime stages around them (the builder stage replaced by a COPY of the
// binaries, every other line used as it is), and Consul and Prometheus
// images FROM scratch around the binaries `make deps` built. It returns the
// stack's image variables.
func (c *cli) buildImages(ctx context.Context, root, version string) ([]string, error) {
	bctx := filepath.Join(c.work, "context")
	for _, dir := range []string{"rootfs/out/data", "rootfs/etc/ssl/certs", "deploy"} {
		if err := os.MkdirAll(filepath.Join(bctx, dir), 0o755); err != nil {
			return nil, err
		}
	}
	for _, cmd := range []string{"shoal", "shoal-farm"} {
		b := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version,
			"-o", filepath.Join(bctx, "rootfs/out", cmd), "./cmd/"+cmd)
		b.Dir, b.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := b.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %w: %s", cmd, err, out)
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
		return nil, fmt.Errorf("no CA certificate bundle on this host")
	}
	if err := os.WriteFile(filepath.Join(bctx, "rootfs/etc/ssl/certs/ca-certificates.crt"), certs, 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, "cp", "-r", filepath.Join(root, "deploy/image"), filepath.Join(bctx, "deploy/image")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copy deploy/image: %w: %s", err, out)
	}
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		return nil, err
	}
	if !builderStage.Match(df) {
		return nil, fmt.Errorf("dockerfile has no 'FROM ... AS builder' stage followed by another")
	}
	df = builderStage.ReplaceAll(df, []byte("FROM scratch AS builder\nCOPY rootfs/ /\n$1"))
	if err := os.WriteFile(filepath.Join(bctx, "Dockerfile"), df, 0o644); err != nil {
		return nil, err
	}
	// The stand-in builder stage gets a tag too, or the classic builder
	// would leave it behind as a dangling image.
	for _, target := range []string{"builder", "farm", "shoal"} {
		c.images = append(c.images, c.image(target))
		if _, err := c.run(ctx, "build", "--quiet", "--build-arg", "VERSION="+version,
			"--target", target, "-t", c.image(target), "-f", filepath.Join(bctx, "Dockerfile"), bctx); err != nil {
			return nil, err
		}
	}
	env := []string{"SHOAL_IMAGE=" + c.image("shoal"), "FARM_IMAGE=" + c.image("farm")}
	for _, b := range []struct {
		bin testenv.Binary
		env string
	}{{testenv.ConsulBinary, "CONSUL_IMAGE"}, {testenv.PrometheusBinary, "PROMETHEUS_IMAGE"}} {
		path, err := b.bin.Find()
		if err != nil {
			return nil, err
		}
		img, err := c.scratchImage(ctx, filepath.Base(path), path)
		if err != nil {
			return nil, err
		}
		env = append(env, b.env+"="+img)
	}
	return env, nil
}

// scratchImage builds an image FROM scratch holding one static binary as
// its entrypoint, as the official images of Consul and Prometheus have.
func (c *cli) scratchImage(ctx context.Context, name, bin string) (string, error) {
	dir := filepath.Join(c.work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if out, err := exec.CommandContext(ctx, "cp", bin, filepath.Join(dir, name)).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copy %s: %w: %s", bin, err, out)
	}
	df := fmt.Sprintf("FROM scratch\nCOPY %s /bin/%s\nENTRYPOINT [\"/bin/%s\"]\n", name, name, name)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return "", err
	}
	img := c.image(name)
	c.images = append(c.images, img)
	_, err := c.run(ctx, "build", "--quiet", "-t", img, dir)
	return img, err
}

// removeImages removes the images buildImages built.
func (c *cli) removeImages() {
	for _, img := range c.images {
		if _, err := c.run(context.Background(), "image", "rm", "-f", img); err != nil {
			c.t.Logf("remove image %s: %v", img, err)
		}
	}
}

// gossipKey writes a fresh gossip key (32 random bytes, base64) and
// returns its path.
func (c *cli) gossipKey() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	f := filepath.Join(c.work, "gossip.key")
	return f, os.WriteFile(f, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
}

// stack is one deployed stack.
type stack struct {
	c    *cli
	name string
	file string
	env  []string
}

// deploy runs docker stack deploy with the stack's variables. The images
// exist only on this engine: --resolve-image never keeps the engine from
// asking a registry for them.
func (s *stack) deploy(ctx context.Context) error {
	_, err := s.c.runIn(ctx, filepath.Dir(s.file), s.env, "stack", "deploy", "--resolve-image", "never", "-c", filepath.Base(s.file), s.name)
	return err
}

// service is the full name of one of the stack's services.
func (s *stack) service(name string) string { return s.name + "_" + name }

// logs returns the last lines of a service's logs (every task's, raw).
func (s *stack) logs(ctx context.Context, service string, tail int) string {
	out, err := exec.CommandContext(ctx, "docker", "service", "logs", "--raw", "--tail", fmt.Sprint(tail), s.service(service)).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(docker service logs %s: %v)", s.service(service), err)
	}
	return string(out)
}

// remove removes the stack, waits until its containers are gone (the
// agents stop within their stop grace period), then removes its networks
// if stack rm could not yet, and its per-task volumes, which stack rm
// leaves. It logs the services' logs first when the test failed.
func (s *stack) remove(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if t.Failed() {
		for _, svc := range []string{"shoal", "receiver", "farm", "consul"} {
			t.Logf("logs of %s:\n%s", s.service(svc), s.logs(ctx, svc, 60))
		}
	}
	label := "label=com.docker.stack.namespace=" + s.name
	if _, err := s.c.run(ctx, "stack", "rm", s.name); err != nil {
		t.Errorf("docker stack rm: %v", err)
	}
	err := e2e.Poll(ctx, 4*time.Minute, time.Second, func(ctx context.Context) error {
		ids, err := s.c.run(ctx, "ps", "-aq", "--filter", label)
		if err != nil {
			return err
		}
		if ids != "" {
			return fmt.Errorf("containers left: %s", strings.Join(strings.Fields(ids), " "))
		}
		return nil
	})
	if err != nil {
		t.Errorf("stack %s: %v", s.name, err)
	}
	err = e2e.Poll(ctx, time.Minute, time.Second, func(ctx context.Context) error {
		nets, err := s.c.run(ctx, "network", "ls", "-q", "--filter", label)
		if err != nil || nets == "" {
			return err
		}
		_, err = s.c.run(ctx, append([]string{"network", "rm"}, strings.Fields(nets)...)...)
		return err
	})
	if err != nil {
		t.Errorf("remove the networks of stack %s: %v", s.name, err)
	}
	vols, err := s.c.run(ctx, "volume", "ls", "-q", "--filter", "name="+s.name+"_")
	if err != nil {
		t.Errorf("list the volumes of stack %s: %v", s.name, err)
	}
	for _, v := range strings.Fields(vols) {
		if !strings.HasPrefix(v, s.name+"_") {
			continue
		}
		if _, err := s.c.run(ctx, "volume", "rm", v); err != nil {
			t.Errorf("remove volume %s: %v", v, err)
		}
	}
	t.Logf("removed stack %s, its networks and %d volumes", s.name, len(strings.Fields(vols)))
}

// serviceCmd runs a docker service command (scale, update) and waits until
// Swarm reports the service converged; it returns how long that took.
func (s *stack) serviceCmd(ctx context.Context, args ...string) (time.Duration, error) {
	t0 := time.Now()
	_, err := s.c.run(ctx, append([]string{"service"}, args...)...)
	return time.Since(t0), err
}
