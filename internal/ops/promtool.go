package ops

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/shoal-dev/shoal/internal/testenv"
)

// EnvPromtoolBin names the promtool binary to run, overriding the search in
// <repo>/.cache/bin and $PATH.
const EnvPromtoolBin = "SHOAL_PROMTOOL_BIN"

// PromtoolBinary is promtool of the receiver's Prometheus version, built by
// `hack/build-deps.sh promtool`.
var PromtoolBinary = testenv.Binary{Name: "promtool", Env: EnvPromtoolBin}

// Promtool runs promtool with args and returns its combined output; the
// error says how it exited and includes the output.
func Promtool(ctx context.Context, args ...string) (string, error) {
	bin, err := PromtoolBinary.Find()
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("promtool %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
