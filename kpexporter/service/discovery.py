"""Targets from the Kubernetes API: one kube-proxy per Node, the Node list re-read on a clock.

For the multi-target mode (one exporter, run as a Deployment, polling every node) instead of a
DaemonSet. Each Node becomes the target ``node=<Node name>`` polled at its first address of
the configured types (``InternalIP`` by default): ``http://<address>:10256/healthz`` and
``http://<address>:10249/metrics``.

"Where reachable": kube-proxy serves ``/healthz`` on all addresses but binds ``/metrics`` to
127.0.0.1 unless ``metricsBindAddress`` says otherwise, so from another pod usually only
``/healthz`` answers. The exporter polls both anyway and says per node what it got (the
metrics poll fails with ``reason="connect"`` and ``kpexporter_up`` is 0 for that node); set
``metricsBindAddress: 0.0.0.0:10249`` for the sync metrics and the latency summaries.

Why re-list rather than watch: nodes come and go in minutes, not seconds, and a paginated list
every ``refresh_interval`` (default 60 s; 500 Nodes a page, so 10 requests for 5,000) is a
dozen lines with no watch bookkeeping (resource versions, bookmarks, 410 Gone, reconnects).
The answer is read as plain JSON, keeping three fields per Node: building the generated
``V1Node`` models of 5,000 Nodes costs many times more CPU, for fields we do not use. An API
error keeps the last good list: a flaky apiserver must not empty ``/metrics``.

The ``kubernetes`` package is imported only here and only when discovery is configured, so the
base install does not need it (``pip install 'kpexporter[kubernetes]'``).
"""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kpexporter.config.schema import NodeDiscovery, Target
from kpexporter.logs import event

__all__ = ["Discovery", "DiscoveryError", "KubernetesNodes", "NodeAddresses", "TargetSink",
           "node_targets", "nodes_from_list"]

PAGE_SIZE = 500
MAX_PAGES = 1000  # 500,000 Nodes: far past Kubernetes' 5,000; a server looping on `continue`
RETRY_AFTER_ERROR = 10.0  # seconds: retry a failed list sooner than refresh_interval
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


class DiscoveryError(ValueError):
    """Discovery cannot start (no kubernetes package, no usable kubeconfig): a usage error."""


@dataclass(frozen=True, slots=True)
class NodeAddresses:
    """What we keep of one Node: its name and ``status.addresses`` as (type, address)."""

    name: str
    addresses: tuple[tuple[str, str], ...]


def nodes_from_list(node_list: Mapping[str, Any]) -> list[NodeAddresses]:
    """The Nodes of one ``NodeList`` JSON page (pure); items of the wrong shape are skipped."""
    out: list[NodeAddresses] = []
    items = node_list.get("items")
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        meta, status = item.get("metadata"), item.get("status")
        name = meta.get("name") if isinstance(meta, dict) else None
        if not isinstance(name, str) or not name:
            continue
        raw = status.get("addresses") if isinstance(status, dict) else None
        addresses = tuple(
            (a["type"], a["address"]) for a in (raw if isinstance(raw, list) else ())
            if isinstance(a, dict) and isinstance(a.get("type"), str)
            and isinstance(a.get("address"), str))
        out.append(NodeAddresses(name, addresses))
    return out


def _host(address: str) -> str | None:
    """``address`` as the host part of a URL (IPv6 in brackets), or None if it is not one."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address if _HOSTNAME.fullmatch(address) else None
    return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed


def node_targets(nodes: Iterable[NodeAddresses], settings: NodeDiscovery
                 ) -> tuple[list[Target], list[str]]:
    """Targets for ``nodes`` (sorted by name), and the names of Nodes left out (no address).

    A Node's address is its first one of the first type in ``settings.address_types`` that it
    has (a dual-stack Node lists its primary family's ``InternalIP`` first).
    """
    targets: dict[str, Target] = {}
    skipped: list[str] = []
    for node in nodes:
        host = None
        for kind in settings.address_types:
            for t, address in node.addresses:
                if t == kind and (host := _host(address)) is not None:
                    break
            if host is not None:
                break
        if host is None:
            skipped.append(node.name)
            continue
        targets.setdefault(node.name, Target(
            node.name, f"http://{host}:{settings.healthz_port}/healthz",
            f"http://{host}:{settings.metrics_port}/metrics"))
    return [targets[name] for name in sorted(targets)], sorted(skipped)


class KubernetesNodes:
    """Lists Nodes with the ``kubernetes`` client (blocking; ``Discovery`` runs it in a thread).

    Configuration: ``settings.kubeconfig`` if given; else in-cluster (the pod's service account)
    when ``$KUBERNETES_SERVICE_HOST`` is set; else ``$KUBECONFIG`` or ``~/.kube/config``.
    Raises ``DiscoveryError`` at construction when none of that works, so ``serve`` refuses to
    start with one clear line instead of polling nothing.
    """

    def __init__(self, settings: NodeDiscovery, timeout: float = 30.0) -> None:
        try:  # optional dependency, typed as Any: mypy runs without it installed too
            client: Any = importlib.import_module("kubernetes.client")
            config: Any = importlib.import_module("kubernetes.config")
        except ImportError:
            raise DiscoveryError("discovery: node discovery needs the kubernetes package: "
                                 "pip install 'kpexporter[kubernetes]'") from None
        self._settings = settings
        self._timeout = timeout
        conf = client.Configuration()
        try:
            if settings.kubeconfig is not None:
                config.load_kube_config(config_file=str(settings.kubeconfig),
                                        context=settings.context, client_configuration=conf)
            elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config(client_configuration=conf)
            else:
                config.load_kube_config(context=settings.context, client_configuration=conf)
        except Exception as e:  # ConfigException, a missing or unreadable file, bad YAML ...
            first = (str(e) or type(e).__name__).splitlines()[0][:200]
            raise DiscoveryError(f"discovery: cannot configure the Kubernetes client: "
                                 f"{first}") from None
        self._api = client.CoreV1Api(client.ApiClient(conf))

    def __call__(self) -> list[NodeAddresses]:
        """Every Node (matching the label selector), page by page."""
        nodes: list[NodeAddresses] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            resp = self._api.list_node(
                label_selector=self._settings.label_selector or None, limit=PAGE_SIZE,
                _continue=token, _preload_content=False, _request_timeout=self._timeout)
            page = json.loads(resp.data)
            if not isinstance(page, dict):
                raise ValueError("the Node list is not a JSON object")
            nodes += nodes_from_list(page)  # keep three fields, drop the rest of the page now
            meta = page.get("metadata")
            token = meta.get("continue") if isinstance(meta, dict) else None
            if not token:
                return nodes
        raise ValueError(f"the Node list did not end after {MAX_PAGES} pages")


class TargetSink(Protocol):
    """What consumes the target lists discovery makes (the poller, which imports this
    module; discovery does not import it back)."""

    def set_targets(self, targets: Sequence[Target]) -> tuple[int, int, int]:
        """Poll exactly ``targets`` from now on; returns (added, removed, changed)."""
        ...


class Discovery:
    """Keeps a ``TargetSink``'s targets equal to the Nodes ``source`` lists, every interval."""

    def __init__(self, source: Callable[[], list[NodeAddresses]], settings: NodeDiscovery
                 ) -> None:
        self.source = source
        self.settings = settings
        self.lists = 0  # successful lists so far
        self.targets = 0  # on the last successful list
        self._skipped: list[str] = []

    async def refresh(self, sink: TargetSink) -> bool:
        """One list; True when it succeeded and ``sink``'s targets were updated."""
        try:
            nodes = await asyncio.to_thread(self.source)
        except Exception as e:  # the API or the network: keep polling the last good list
            first = (str(e) or type(e).__name__).splitlines()[0][:300]
            event(30, "discovery_error", error=f"{type(e).__name__}: {first}",
                  targets=self.targets)
            return False
        targets, skipped = node_targets(nodes, self.settings)
        added, removed, changed = sink.set_targets(targets)
        self.lists += 1
        self.targets = len(targets)
        if added or removed or changed or self.lists == 1:
            event(20, "targets_discovered", targets=len(targets), added=added, removed=removed,
                  changed=changed)
        if skipped != self._skipped:
            if skipped:
                event(30, "nodes_without_address", count=len(skipped),
                      address_types=",".join(self.settings.address_types),
                      first=skipped[0])
            self._skipped = skipped
        return True

    async def run(self, sink: TargetSink) -> None:
        """List now, then every ``refresh_interval`` (sooner after a failure) until cancelled."""
        while True:
            ok = await self.refresh(sink)
            interval = self.settings.refresh_interval
            await asyncio.sleep(interval if ok else min(interval, RETRY_AFTER_ERROR))
