package main

import (
	"github.com/alecthomas/kingpin/v2"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/internal/flagext"
	"github.com/shoal-dev/shoal/internal/goruntime"
)

// newFlags declares every flag of the agent, in Prometheus' naming style:
// the agent's packages declare their own (agent.Options.RegisterFlags), main
// adds the Go runtime's and the logger's.
func newFlags(app *kingpin.Application, o *agent.Options, rt *goruntime.Config) *logFlags {
	o.RegisterFlags(app)
	rt.RegisterFlags(app)
	l := &logFlags{level: "info", format: "logfmt"}
	flagext.String(app, "log.level", "Only log messages with the given severity or above. One of: [debug, info, warn, error]", &l.level)
	flagext.String(app, "log.format", "Output format of log messages. One of: [logfmt, json]", &l.format)
	return l
}
