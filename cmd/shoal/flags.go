package main

import (
	"github.com/alecthomas/kingpin/v2"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/internal/flagext"
)

// newFlags declares every flag of the agent, in Prometheus' naming style:
// the agent's packages declare their own (agent.Options.RegisterFlags), main
// adds the logger's.
func newFlags(app *kingpin.Application, o *agent.Options) *logFlags {
	o.RegisterFlags(app)
	l := &logFlags{level: "info", format: "logfmt"}
	flagext.String(app, "log.level", "Only log messages with the given severity or above. One of: [debug, info, warn, error]", &l.level)
	flagext.String(app, "log.format", "Output format of log messages. One of: [logfmt, json]", &l.format)
	return l
}
