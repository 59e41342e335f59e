package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/shoal-dev/shoal/scrape"
)

// limitKeys are the limit fields a YAML mapping sets, whatever their value:
// Prometheus' config reads an explicit 0 as an absent field, and shoal
// must tell them apart (an explicit 0 keeps the job unlimited).
type limitKeys struct {
	BodySizeLimit present `yaml:"body_size_limit"`
	SampleLimit   present `yaml:"sample_limit"`
}

func (k limitKeys) own() scrape.OwnLimits {
	return scrape.OwnLimits{BodySize: bool(k.BodySizeLimit), Samples: bool(k.SampleLimit)}
}

// present is true when its field is given a value other than null (a null
// field is absent for Prometheus too).
type present bool

func (p *present) UnmarshalYAML(n *yaml.Node) error {
	*p = present(n.Tag != "!!null")
	return nil
}

// limitsFile is the part of a config file, or of a scrape_config_files
// file, that sets limits.
type limitsFile struct {
	Global        limitKeys `yaml:"global"`
	ScrapeConfigs []struct {
		JobName   string `yaml:"job_name"`
		limitKeys `yaml:",inline"`
	} `yaml:"scrape_configs"`
}

// ownLimits returns, per job, the limits the job sets itself in its
// scrape config or in global. The files have been loaded by Prometheus, so
// a decoding error here only means a job gets the defaults.
func (c *Config) ownLimits() map[string]scrape.OwnLimits {
	out := map[string]scrape.OwnLimits{}
	var main limitsFile
	_ = yaml.Unmarshal(c.raw, &main)
	global := main.Global.own()
	add := func(f limitsFile) {
		for _, j := range f.ScrapeConfigs {
			o := j.own()
			out[j.JobName] = scrape.OwnLimits{BodySize: o.BodySize || global.BodySize, Samples: o.Samples || global.Samples}
		}
	}
	add(main)
	// Paths were made absolute by SetDirectory, as GetScrapeConfigs reads them.
	for _, pat := range c.ScrapeConfigFiles {
		files, _ := filepath.Glob(pat)
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				continue
			}
			var f limitsFile
			if yaml.Unmarshal(data, &f) == nil {
				add(f)
			}
		}
	}
	return out
}

// jobLimits is what ApplyDefaultLimits found and did for one job.
type jobLimits struct {
	own       scrape.OwnLimits
	defaulted scrape.Defaulted
}

// ApplyDefaultLimits gives every scrape job the limits of l that it does not
// set itself (in the job or in global; an explicit 0 there is kept and means
// no limit), and remembers them for LimitWarnings. Jobs from
// scrape_config_files are read once here and kept with the config, as the
// scrape manager would read them on the same reload.
func (c *Config) ApplyDefaultLimits(l scrape.Limits) error {
	scfgs, err := c.GetScrapeConfigs()
	if err != nil {
		return fmt.Errorf("read scrape configs: %w", err)
	}
	own := c.ownLimits()
	c.jobLimits = c.jobLimits[:0]
	for _, sc := range scfgs {
		o := own[sc.JobName]
		c.jobLimits = append(c.jobLimits, jobLimits{own: o, defaulted: l.Apply(sc, o)})
	}
	c.ScrapeConfigs, c.ScrapeConfigFiles = scfgs, nil
	return nil
}

// DefaultedLimits lists, per job, the defaults ApplyDefaultLimits set.
func (c *Config) DefaultedLimits() []scrape.Defaulted {
	var out []scrape.Defaulted
	for _, j := range c.jobLimits {
		if j.defaulted.Any() {
			out = append(out, j.defaulted)
		}
	}
	return out
}

// LimitWarnings has one line per job that sets no body_size_limit or no
// sample_limit of its own, saying which default applies (after
// ApplyDefaultLimits), or that none does.
func (c *Config) LimitWarnings() []string {
	var out []string
	for _, j := range c.jobLimits {
		var parts []string
		if !j.own.BodySize {
			if b := j.defaulted.BodySize; b != 0 {
				parts = append(parts, fmt.Sprintf("body_size_limit %s (--scrape.default-body-size-limit)", b))
			} else {
				parts = append(parts, "no body_size_limit (--scrape.default-body-size-limit is 0)")
			}
		}
		if !j.own.Samples {
			if n := j.defaulted.Samples; n != 0 {
				parts = append(parts, fmt.Sprintf("sample_limit %d (--scrape.default-sample-limit)", n))
			} else {
				parts = append(parts, "no sample_limit (--scrape.default-sample-limit is 0)")
			}
		}
		if len(parts) == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("job %q sets no scrape limit of its own: shoal applies %s; set body_size_limit and sample_limit in the job or in global to choose (0: no limit)",
			j.defaulted.Job, strings.Join(parts, " and ")))
	}
	return out
}
