"""kpexporter: a kube-proxy health-and-SLO exporter for Prometheus."""

__version__ = "0.1.0"
