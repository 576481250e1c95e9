"""Grafana dashboards as code, rendered from the config the exporter reads.

``render(cfg)`` gives the files of ``dashboards/`` (name → JSON text): the cluster overview,
the node detail and the kubernetes-mixin "Proxy" panels fixed. Pure: no I/O, no clock; the
same config gives the same bytes (the committed files are compared with a fresh rendering).
"""

from kpexporter.dashboards.render import FILES, render

__all__ = ["FILES", "render"]
