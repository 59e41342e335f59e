package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"go.yaml.in/yaml/v3"

	// Registers the service discovery sections shoal supports (consul, file,
	// http, dns) with Prometheus' config package, so that the config loads
	// with exactly the mechanisms the agent can run.
	"github.com/shoal-dev/shoal/delivery"
	_ "github.com/shoal-dev/shoal/sd"
)

// Config is the reloadable configuration: an unmodified Prometheus
// configuration file, loaded as Prometheus does in agent mode. Process
// identity and cluster settings come from flags, not from this file.
type Config struct {
	*config.Config
	// raw is the file as read, for what the loaded config cannot tell
	// (ownLimits).
	raw []byte
	// jobLimits are what ApplyDefaultLimits found and applied, per job.
	jobLimits []jobLimits
}

// LoadFile reads and validates the Prometheus configuration file at path.
// Relative paths inside it (file_sd files, credentials) resolve against the
// file's directory, as in Prometheus.
func LoadFile(path string, logger *slog.Logger) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	cfg, err := Load(data, logger)
	if err != nil {
		return nil, fmt.Errorf("load config file %s: %w", path, err)
	}
	cfg.SetDirectory(filepath.Dir(path))
	return cfg, nil
}

// Load parses and validates a Prometheus configuration. YAML is strict:
// unknown fields fail. Sections agent mode cannot serve (rule_files,
// alerting, remote_read) are refused, as by `prometheus --agent`. A nil
// logger discards the warnings about unset environment variables in
// external labels.
func Load(data []byte, logger *slog.Logger) (*Config, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := config.Load(string(data), logger)
	if err != nil {
		return nil, locate(data, err)
	}
	if err := checkAgentMode(cfg); err != nil {
		return nil, err
	}
	if err := checkRemoteWrite(cfg); err != nil {
		return nil, err
	}
	c := &Config{Config: cfg, raw: data}
	c.defaultGoGC()
	return c, nil
}

// DefaultGoGC is runtime.gogc when neither the file nor $GOGC sets it,
// below Prometheus' 75: an agent allocates little per sample (no TSDB), so
// the collector's extra cycles cost little CPU while the heap's headroom
// over the scrape cache is most of the memory that grows with series.
const DefaultGoGC = 40

// defaultGoGC replaces Prometheus' default runtime.gogc with DefaultGoGC,
// unless the file sets it or $GOGC does (then the config package used it).
func (c *Config) defaultGoGC() {
	if _, ok := os.LookupEnv("GOGC"); ok {
		return
	}
	var f struct {
		Runtime struct {
			GoGC present `yaml:"gogc"`
		} `yaml:"runtime"`
	}
	// The file was loaded by Prometheus: a decoding error cannot happen.
	if yaml.Unmarshal(c.raw, &f) == nil && !f.Runtime.GoGC {
		c.Runtime.GoGC = DefaultGoGC
	}
}

// Warnings lists settings that load but undermine continuity under churn.
// Today one: a remote_write whose batch_send_deadline is not below the
// shortest scrape interval. A quiet queue holds samples that long, so when
// a target changes owner (a handoff, a dead or partitioned peer) the new
// owner's first samples can reach the receiver before the old owner's last
// ones, which a receiver without an out-of-order window rejects.
func (c *Config) Warnings() []string {
	scfgs, err := c.GetScrapeConfigs()
	if err != nil || len(scfgs) == 0 {
		return nil
	}
	shortest, job := time.Duration(scfgs[0].ScrapeInterval), scfgs[0].JobName
	for _, sc := range scfgs[1:] {
		if iv := time.Duration(sc.ScrapeInterval); iv < shortest {
			shortest, job = iv, sc.JobName
		}
	}
	var out []string
	for i, rw := range c.RemoteWriteConfigs {
		if d := time.Duration(rw.QueueConfig.BatchSendDeadline); d >= shortest {
			out = append(out, fmt.Sprintf("remote_write[%d] (%s): queue_config.batch_send_deadline %s is not below the shortest scrape_interval (%s, job %q): when a target changes owner, the new owner's samples can reach the receiver before the old owner's and a receiver without an out-of-order window rejects the old ones; set it below %s",
				i, rw.URL.Redacted(), model.Duration(d), model.Duration(shortest), job, model.Duration(shortest)))
		}
	}
	return out
}

// checkAgentMode repeats the checks config.LoadFile does with agentMode set;
// it works on bytes, which Load needs. TestAgentModeMatchesPrometheus keeps
// the two in step.
func checkAgentMode(cfg *config.Config) error {
	switch {
	case len(cfg.AlertingConfig.AlertmanagerConfigs) > 0 || len(cfg.AlertingConfig.AlertRelabelConfigs) > 0:
		return errors.New("field alerting is not allowed in agent mode")
	case len(cfg.RuleFiles) > 0:
		return errors.New("field rule_files is not allowed in agent mode")
	case len(cfg.RemoteReadConfigs) > 0:
		return errors.New("field remote_read is not allowed in agent mode")
	}
	return nil
}

// checkRemoteWrite refuses remote_write URLs that Prometheus loads but
// cannot send to: empty, relative, without a host, or with a scheme other
// than http and https. The URL is shown redacted: it may hold a password.
func checkRemoteWrite(cfg *config.Config) error {
	var errs []error
	for i, rw := range cfg.RemoteWriteConfigs {
		u := rw.URL
		switch {
		case u == nil || u.URL == nil || u.String() == "":
			errs = append(errs, fmt.Errorf("remote_write[%d].url must not be empty", i))
		case u.Scheme != "http" && u.Scheme != "https":
			errs = append(errs, fmt.Errorf("remote_write[%d].url %q must start with http:// or https://", i, u.Redacted()))
		case u.Host == "" || u.Hostname() == "":
			errs = append(errs, fmt.Errorf("remote_write[%d].url %q must name a host", i, u.Redacted()))
		}
	}
	if err := delivery.Validate(cfg); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// quoted finds the quoted values in an error message, e.g. `"5x"` in
// `unknown unit "x" in duration "5x"`.
var quoted = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)

// locate adds the field path and line to errors from Prometheus' validation
// (`unknown unit "x" in duration "5x"`), which name neither. It looks for the
// YAML value the error quotes, last quote first; YAML syntax and unknown-field
// errors already carry a line and are returned unchanged.
func locate(data []byte, err error) error {
	msg := err.Error()
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return err
	}
	if strings.HasPrefix(msg, "yaml: ") {
		return locateUnknownFields(&root, err)
	}
	matches := quoted.FindAllStringSubmatch(msg, -1)
	for i := len(matches) - 1; i >= 0; i-- {
		value, uerr := strconv.Unquote(`"` + matches[i][1] + `"`)
		if uerr != nil || value == "" {
			continue
		}
		if path, line, ok := findValue(&root, "", value); ok {
			return fmt.Errorf("%s (line %d): %w", path, line, err)
		}
	}
	return err
}

// unknownField matches the strict decoder's complaint, e.g.
// `line 2: field scrape_intervall not found in type config.plain`.
var unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found in type \S+`)

// locateUnknownFields rewrites the YAML decoder's unknown-field errors, which
// name an internal Go type, into the field's path in the file:
// `unknown field global.scrape_intervall (line 2)`.
func locateUnknownFields(root *yaml.Node, err error) error {
	matches := unknownField.FindAllStringSubmatch(err.Error(), -1)
	if len(matches) == 0 {
		return err
	}
	parts := make([]string, 0, len(matches))
	for _, m := range matches {
		line, _ := strconv.Atoi(m[1])
		path, ok := findKey(root, "", line, m[2])
		if !ok {
			path = m[2]
		}
		if strings.HasSuffix(m[2], "_sd_configs") {
			parts = append(parts, fmt.Sprintf("%s (line %d): service discovery %s is not supported by shoal (supported: consul_sd_configs, file_sd_configs, http_sd_configs, dns_sd_configs, static_configs)", path, line, m[2]))
			continue
		}
		parts = append(parts, fmt.Sprintf("unknown field %s (line %d)", path, line))
	}
	return errors.New(strings.Join(parts, "; "))
}

// findKey returns the path of the mapping key name on line.
func findKey(n *yaml.Node, path string, line int, name string) (string, bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p, ok := findKey(c, path, line, name); ok {
				return p, true
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if path != "" {
				key = path + "." + key
			}
			if n.Content[i].Line == line && n.Content[i].Value == name {
				return key, true
			}
			if p, ok := findKey(n.Content[i+1], key, line, name); ok {
				return p, true
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if p, ok := findKey(c, fmt.Sprintf("%s[%d]", path, i), line, name); ok {
				return p, true
			}
		}
	}
	return "", false
}

// findValue returns the path and line of the first scalar equal to value.
func findValue(n *yaml.Node, path string, value string) (string, int, bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p, l, ok := findValue(c, path, value); ok {
				return p, l, true
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if path != "" {
				key = path + "." + key
			}
			if p, l, ok := findValue(n.Content[i+1], key, value); ok {
				return p, l, true
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if p, l, ok := findValue(c, fmt.Sprintf("%s[%d]", path, i), value); ok {
				return p, l, true
			}
		}
	case yaml.ScalarNode:
		if n.Value == value {
			return path, n.Line, true
		}
	}
	return "", 0, false
}
