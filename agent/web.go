package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
)

// webShutdownTimeout bounds how long in-flight requests may take at stop.
const webShutdownTimeout = 5 * time.Second

// webServer serves /metrics, the lifecycle endpoints, the API and the page.
type webServer struct {
	a    *Agent
	mux  *http.ServeMux
	addr atomic.Pointer[string]
}

// newWebServer routes every path; Options.Validate has checked the
// address and the web config file.
func newWebServer(a *Agent) *webServer {
	w := &webServer{a: a, mux: http.NewServeMux()}
	m := w.mux
	m.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg, EnableOpenMetrics: true}))
	m.HandleFunc("GET /-/healthy", func(rw http.ResponseWriter, _ *http.Request) {
		rw.WriteHeader(http.StatusOK)
		_, _ = fmt.Fprintln(rw, "Shoal is Healthy.")
	})
	m.HandleFunc("GET /-/ready", w.ready)
	m.HandleFunc("HEAD /-/ready", w.ready)
	m.HandleFunc("POST /-/reload", w.lifecycle(w.reload))
	m.HandleFunc("PUT /-/reload", w.lifecycle(w.reload))
	m.HandleFunc("POST /-/quit", w.lifecycle(w.quitHandler))
	m.HandleFunc("PUT /-/quit", w.lifecycle(w.quitHandler))
	m.HandleFunc("GET /api/v1/targets", w.apiTargets)
	m.HandleFunc("GET /api/v1/cluster/members", w.apiMembers)
	m.HandleFunc("GET /api/v1/cluster/targets", w.apiClusterTargets)
	m.HandleFunc("GET /api/v1/cluster/moves", w.apiMoves)
	m.HandleFunc("GET /api/v1/cluster/self", w.apiSelf)
	m.HandleFunc("GET /api/v1/delivery", w.apiDelivery)
	m.HandleFunc("GET /api/v1/cluster/discovery", w.apiDiscovery)
	m.HandleFunc("GET /api/v1/cluster/leader", w.apiLeader)
	m.HandleFunc("GET /api/v1/cluster/load", w.apiLoad)
	m.HandleFunc("GET /api/v1/cluster/plan", w.apiPlan)
	m.HandleFunc("GET /api/v1/cluster/placement", w.apiPlacement)
	m.HandleFunc("GET /api/v1/cluster/quarantine", w.apiQuarantine)
	m.HandleFunc("GET /{$}", w.page)
	return w
}

// Addr returns the listening address once Run has opened it.
func (w *webServer) Addr() string {
	if p := w.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// Run listens and serves until ctx is cancelled, then shuts down gracefully.
func (w *webServer) Run(ctx context.Context) error {
	l, err := net.Listen("tcp", w.a.opts.Web.ListenAddress)
	if err != nil {
		return fmt.Errorf("--web.listen-address %q: %w", w.a.opts.Web.ListenAddress, err)
	}
	addr := l.Addr().String()
	w.addr.Store(&addr)
	srv := &http.Server{
		Handler:           w.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
	}
	cfgFile := w.a.opts.Web.ConfigFile
	systemd := false
	flags := &web.FlagConfig{
		WebListenAddresses: &[]string{w.a.opts.Web.ListenAddress},
		WebSystemdSocket:   &systemd,
		WebConfigFile:      &cfgFile,
	}
	errc := make(chan error, 1)
	go func() { errc <- web.Serve(l, srv, flags, w.a.logger.With("component", "web")) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("web server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), webShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		w.a.logger.Warn("web server shutdown", "err", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("web server: %w", err)
	}
	return nil
}

func (w *webServer) ready(rw http.ResponseWriter, _ *http.Request) {
	if w.a.Ready() {
		rw.WriteHeader(http.StatusOK)
		_, _ = fmt.Fprintln(rw, "Shoal is Ready.")
		return
	}
	rw.WriteHeader(http.StatusServiceUnavailable)
	_, _ = fmt.Fprintln(rw, "Shoal is not ready: "+w.a.notReadyReason()+".")
}

func (w *webServer) lifecycle(h http.HandlerFunc) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		if !w.a.opts.Web.EnableLifecycle {
			http.Error(rw, "Lifecycle API is not enabled (start shoal with --web.enable-lifecycle).", http.StatusForbidden)
			return
		}
		h(rw, r)
	}
}

func (w *webServer) reload(rw http.ResponseWriter, _ *http.Request) {
	if err := w.a.Reload(); err != nil {
		http.Error(rw, fmt.Sprintf("failed to reload config: %s", err), http.StatusInternalServerError)
		return
	}
	_, _ = fmt.Fprintln(rw, "Reloaded.")
}

func (w *webServer) quitHandler(rw http.ResponseWriter, _ *http.Request) {
	_, _ = fmt.Fprintln(rw, "Requesting termination... Goodbye!")
	w.a.Quit()
}
