"""Prometheus alerting and recording rules for kube-proxy, rendered from the config."""
