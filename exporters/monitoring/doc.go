// Package monitoring holds a Grafana dashboard (grafana-dashboard.json) and
// Prometheus alert rules (prometheus-alerts.yml) over the metrics tracebus
// services emit, and the test that evaluates both on a real Prometheus
// scraping the example. It has no Go API; docs/monitoring.md describes the
// panels, the rules and their thresholds.
package monitoring
