// Package ops tests the operator's kit in deploy/: the alert rules
// (deploy/alerts.yml) and the Grafana dashboard (deploy/grafana/shoal.json).
//
// The rules are checked and unit-tested with promtool (`promtool check
// rules`, `promtool test rules deploy/alerts_test.yml`), built like the
// Prometheus receiver by hack/build-deps.sh. The live test runs a Prometheus
// server loaded with the rules that scrapes three real agents (started by
// internal/e2e with Consul, the farm and a receiver), kills an agent and
// stops the receiver, and reads which alerts fire from /api/v1/alerts, then
// which resolve after recovery; it then evaluates every dashboard query,
// with its variables substituted, against that Prometheus.
//
// Every query of the rules and the dashboard may only name metrics shoal
// exports: those its source declares, those a live agent serves on
// /metrics, and the series its scrapes write for every target (up,
// scrape_duration_seconds, ...).
package ops
