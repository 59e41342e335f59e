// Package flagext declares shoal's command-line flags for the packages that
// own them: every package with process settings has a Config whose
// RegisterFlags declares its flags and defaults once, through these helpers,
// so that every flag has its SHOAL_* environment twin and every bad value is
// reported with the flag's name, the value and what is allowed.
package flagext

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
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

// Uint declares a non-negative integer flag whose default is *p.
func Uint(app *kingpin.Application, name, help string, p *uint) {
	Flag(app, name, help).Default(strconv.FormatUint(uint64(*p), 10)).SetValue(uintValue{name, p})
}

// Bytes declares a non-negative size flag in Prometheus' notation (64MB,
// 512KiB, 0), whose default is *p.
func Bytes(app *kingpin.Application, name, help string, p *units.Base2Bytes) {
	Flag(app, name, help).Default(formatBytes(*p)).SetValue(bytesValue{name, p})
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

type uintValue struct {
	name string
	p    *uint
}

func (v uintValue) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, strconv.IntSize)
	if err != nil {
		return fmt.Errorf("--%s must be a non-negative integer, got %q", v.name, s)
	}
	*v.p = uint(n)
	return nil
}
func (v uintValue) String() string { return strconv.FormatUint(uint64(*v.p), 10) }

type bytesValue struct {
	name string
	p    *units.Base2Bytes
}

func (v bytesValue) Set(s string) error {
	b, err := units.ParseBase2Bytes(s)
	if err != nil || b < 0 {
		return fmt.Errorf("--%s must be a size such as 64MB, 512KB or 0, got %q", v.name, s)
	}
	*v.p = b
	return nil
}
func (v bytesValue) String() string { return formatBytes(*v.p) }

// formatBytes writes 0 as "0", which ParseBase2Bytes reads back, where
// Base2Bytes.String writes "0B".
func formatBytes(b units.Base2Bytes) string {
	if b == 0 {
		return "0"
	}
	return b.String()
}

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
