// Package flagext declares shoal's command-line flags for the packages that
// own them: every package with process settings has a Config whose
// RegisterFlags declares its flags and defaults once, through these helpers,
// so that every flag has its SHOAL_* environment twin and every bad value is
// reported with the flag's name, the value and what is allowed.
package flagext

import (
	"fmt"
	"github.com/alecthomas/units"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

// EnvName is a flag's environment twin: --cluster.node-name is
// SHOAL_CLUSTER_NODE_NAME.
func EnvName(flag string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return "SHOAL_" + strings.ToUpper(r.Replace(flag))
}

// Flag declares a flag with its environment twin.
func Flag(app *kingpin.Application, name, help string) *kingpin.FlagClause {
	return app.Flag(name, help).Envar(EnvName(name))
}

// String declares a string flag whose default is *p.
func String(app *kingpin.Application, name, help string, p *string) {
	Flag(app, name, help).Default(*p).StringVar(p)
}

// Strings declares a repeatable string flag.
func Strings(app *kingpin.Application, name, help string, p *[]string) {
	Flag(app, name, help).StringsVar(p)
}

// Bool declares a boolean flag whose default is *p.
func Bool(app *kingpin.Application, name, help string, p *bool) {
	Flag(app, name, help).Default(strconv.FormatBool(*p)).BoolVar(p)
}

// Int declares an integer flag whose default is *p.
func Int(app *kingpin.Application, name, help string, p *int) {
	Flag(app, name, help).Default(strconv.Itoa(*p)).SetValue(intValue{name, p})
}

// Float declares a number flag whose default is *p.
func Float(app *kingpin.Application, name, help string, p *float64) {
	Flag(app, name, help).Default(strconv.FormatFloat(*p, 'g', -1, 64)).SetValue(floatValue{name, p})
}

// Duration declares a non-negative duration flag whose default is *p.
func Duration(app *kingpin.Application, name, help string, p *time.Duration) {
	Flag(app, name, help).Default(p.String()).SetValue(durationValue{name, p})
}

// kingpin's own numeric and duration values report strconv errors without
// the flag's name; these name the flag, quote the value and say what is
// allowed.

type intValue struct {
	name string
	p    *int
}

func (v intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("--%s must be an integer, got %q", v.name, s)
	}
	*v.p = n
	return nil
}
func (v intValue) String() string { return strconv.Itoa(*v.p) }

type floatValue struct {
	name string
	p    *float64
}

func (v floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("--%s must be a number, got %q", v.name, s)
	}
	*v.p = f
	return nil
}
func (v floatValue) String() string { return strconv.FormatFloat(*v.p, 'g', -1, 64) }

type durationValue struct {
	name string
	p    *time.Duration
}

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("--%s must be a non-negative duration such as 500ms, 15s or 1m, got %q", v.name, s)
	}
	*v.p = d
	return nil
}
func (v durationValue) String() string { return v.p.String() }

// Bytes declares a size flag such as 512MB or 2GiB (powers of 1024; 0 is
// allowed) whose default is *p.
func Bytes(app *kingpin.Application, name, help string, p *uint64) {
	Flag(app, name, help).Default(units.Base2Bytes(*p).String()).SetValue(bytesValue{name, p})
}

type bytesValue struct {
	name string
	p    *uint64
}

func (v bytesValue) Set(s string) error {
	n, err := units.ParseBase2Bytes(s)
	if err != nil || n < 0 {
		return fmt.Errorf("--%s must be a size such as 512MB or 2GB (powers of 1024), got %q", v.name, s)
	}
	*v.p = uint64(n)
	return nil
}
func (v bytesValue) String() string { return units.Base2Bytes(*v.p).String() }
