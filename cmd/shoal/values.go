package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

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

func intFlag(app *kingpin.Application, name, help, def string, p *int) {
	flag(app, name, help).Default(def).SetValue(intValue{name, p})
}

func floatFlag(app *kingpin.Application, name, help, def string, p *float64) {
	flag(app, name, help).Default(def).SetValue(floatValue{name, p})
}

func durationFlag(app *kingpin.Application, name, help string, def time.Duration, p *time.Duration) {
	flag(app, name, help).Default(def.String()).SetValue(durationValue{name, p})
}
