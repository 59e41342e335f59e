// Command shoal-farm serves many synthetic scrape targets from one process,
// each on its own port, and optionally registers them in Consul. See
// internal/farm for what the targets serve.
//
//	shoal-farm --targets 30 --series 10 --consul.address 127.0.0.1:8500 --unhealthy 2
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/shoal-dev/shoal/internal/farm"
)

// consulTimeout bounds registration and deregistration, so a dead Consul
// cannot hang startup or shutdown.
const consulTimeout = 30 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("shoal-farm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg        farm.Config
		consulAddr string
		tags       string
		logLevel   slog.Level
	)
	fs.IntVar(&cfg.Targets, "targets", 30, "number of targets, each on its own port")
	fs.IntVar(&cfg.Series, "series", 10, "farm_series gauges per target")
	fs.StringVar(&cfg.ListenHost, "listen-host", farm.DefaultListenHost, "host every target listens on")
	fs.IntVar(&cfg.BasePort, "base-port", 0, "port of the first target, the others follow; 0 picks free ports")
	fs.IntVar(&cfg.Unhealthy, "unhealthy", 0, "number of targets (the last ones) whose /health answers 500")
	fs.StringVar(&consulAddr, "consul.address", "", "Consul agent HTTP address to register targets with; empty means no registration")
	fs.StringVar(&cfg.AdvertiseHost, "consul.advertise-host", "", "host to register in Consul (service address and health check); empty means the listen host, or 127.0.0.1 when that is 0.0.0.0")
	fs.StringVar(&cfg.Service, "consul.service", farm.DefaultService, "Consul service name of the targets")
	fs.StringVar(&tags, "tags", "", "comma-separated Consul tags of every target")
	fs.TextVar(&logLevel, "log.level", slog.LevelInfo, "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shoal-farm: unexpected arguments %q\n", fs.Args())
		return 2
	}
	for t := range strings.SplitSeq(tags, ",") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.Tags = append(cfg.Tags, t)
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	cfg.Logger = logger

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	f, err := farm.Start(ctx, cfg)
	if err != nil {
		logger.Error("start farm", "err", err)
		return 1
	}
	defer func() { _ = f.Close() }()

	healthy := 0
	for _, t := range f.Targets() {
		fmt.Fprintf(stdout, "%s %s healthy=%t\n", t.ID, t.Addr, t.Healthy)
		if t.Healthy {
			healthy++
		}
	}

	var client *api.Client
	if consulAddr != "" {
		ccfg := api.DefaultConfig()
		ccfg.Address = consulAddr
		if client, err = api.NewClient(ccfg); err != nil {
			logger.Error("create consul client", "err", err, "address", consulAddr)
			return 1
		}
		rctx, cancel := context.WithTimeout(ctx, consulTimeout)
		err = f.Register(rctx, client)
		cancel()
		if err != nil {
			logger.Error("register targets", "err", err, "address", consulAddr)
			deregister(f, client, logger) // remove the ones that made it
			return 1
		}
	}

	registered := "not registered in consul"
	if client != nil {
		registered = fmt.Sprintf("registered as service %q in consul at %s", cfg.Service, consulAddr)
	}
	fmt.Fprintf(stdout, "farm: %d targets (%d healthy, %d unhealthy), %d series each, %s\n",
		len(f.Targets()), healthy, len(f.Targets())-healthy, cfg.Series, registered)

	<-ctx.Done()
	logger.Info("shutting down")
	if client != nil {
		deregister(f, client, logger)
	}
	if err := f.Close(); err != nil {
		logger.Error("close farm", "err", err)
		return 1
	}
	return 0
}

func deregister(f *farm.Farm, client *api.Client, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), consulTimeout)
	defer cancel()
	if err := f.Deregister(ctx, client); err != nil {
		logger.Error("deregister targets", "err", err)
	}
}
