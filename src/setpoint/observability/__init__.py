"""Observing the host and its instances: metrics (Prometheus), and later logs, alerts, probes and the audit trail."""
