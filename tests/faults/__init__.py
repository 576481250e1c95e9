"""Fault injection: a hostile fake kube-proxy and the exporter driven against it."""
