"""Node discovery: NodeList JSON to targets, the real kubernetes client against a fake API
server on loopback, and the poller following the list (nodes added and removed while running).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from kpexporter.cli import main
from kpexporter.config.schema import ConfigError, NodeDiscovery, build_config
from kpexporter.service.discovery import (
    PAGE_SIZE,
    Discovery,
    DiscoveryError,
    KubernetesNodes,
    NodeAddresses,
    node_targets,
    nodes_from_list,
)
from kpexporter.service.poller import Poller
from kpexporter.service.text import render_text
from tests.builders import HEALTHY_128
from tests.fixtures import V1_30, fixture_bytes


def node(name: str, *addresses: tuple[str, str]) -> dict[str, Any]:
    """A Node as the API returns it (with some of the bulk real Nodes carry)."""
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"addresses": [{"type": t, "address": a} for t, a in addresses],
                       "images": [{"names": ["registry.k8s.io/pause:3.9"], "sizeBytes": 1}]}}


# ---------------------------------------------------------------- pure: NodeList -> targets


def test_internal_ip_of_each_node_sorted_by_name() -> None:
    page = {"kind": "NodeList", "items": [
        node("b", ("Hostname", "b"), ("InternalIP", "10.0.0.2")),
        node("a", ("ExternalIP", "1.2.3.4"), ("InternalIP", "10.0.0.1")),
    ]}
    targets, skipped = node_targets(nodes_from_list(page), NodeDiscovery())
    assert [(t.node, t.healthz_url, t.metrics_url) for t in targets] == [
        ("a", "http://10.0.0.1:10256/healthz", "http://10.0.0.1:10249/metrics"),
        ("b", "http://10.0.0.2:10256/healthz", "http://10.0.0.2:10249/metrics"),
    ]
    assert skipped == []


def test_ports_address_type_preference_ipv6_and_dual_stack() -> None:
    nodes = nodes_from_list({"items": [
        node("v6", ("InternalIP", "fd00:0:0::7")),
        node("dual", ("InternalIP", "10.0.0.3"), ("InternalIP", "fd00::3")),
        node("ext-only", ("ExternalIP", "192.0.2.9")),
        node("none", ("Hostname", "none")),
    ]})
    settings = NodeDiscovery(healthz_port=1256, metrics_port=1249,
                             address_types=("InternalIP", "ExternalIP"))
    targets, skipped = node_targets(nodes, settings)
    urls = {t.node: t.healthz_url for t in targets}
    assert urls == {"dual": "http://10.0.0.3:1256/healthz",  # the primary family, listed first
                    "ext-only": "http://192.0.2.9:1256/healthz",
                    "v6": "http://[fd00::7]:1256/healthz"}
    assert skipped == ["none"]
    assert targets[0].metrics_url == "http://10.0.0.3:1249/metrics"


def test_items_of_the_wrong_shape_are_skipped_not_fatal() -> None:
    page: dict[str, Any] = {"items": [
        None, 3, {"metadata": None}, {"metadata": {"name": ""}},
        {"metadata": {"name": "no-status"}},
        {"metadata": {"name": "odd"}, "status": {"addresses": [None, {"type": 1}, {
            "type": "InternalIP", "address": "not an address!"}]}},
        node("ok", ("InternalIP", "10.1.1.1")),
    ]}
    nodes = nodes_from_list(page)
    assert [n.name for n in nodes] == ["no-status", "odd", "ok"]
    targets, skipped = node_targets(nodes, NodeDiscovery())
    assert [t.node for t in targets] == ["ok"]
    assert skipped == ["no-status", "odd"]
    assert nodes_from_list({"items": "nope"}) == []


# ---------------------------------------------------------------- the real client, a fake API


class FakeApi:
    """A loopback Kubernetes API that serves ``/api/v1/nodes`` paginated, like the apiserver."""

    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self.nodes = nodes
        self.requests: list[tuple[dict[str, list[str]], str | None]] = []
        self.fail = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                api.requests.append((query, self.headers.get("Authorization")))
                if url.path != "/api/v1/nodes" or api.fail:
                    self._answer(500 if api.fail else 404, {"kind": "Status"})
                    return
                start = int(query.get("continue", ["0"])[0])
                limit = int(query.get("limit", [str(len(api.nodes))])[0])
                chosen = api.nodes
                if "labelSelector" in query:
                    key, _, value = query["labelSelector"][0].partition("=")
                    chosen = [n for n in chosen if n["metadata"]["labels"].get(key) == value]
                items = chosen[start:start + limit]
                meta: dict[str, Any] = {"resourceVersion": "42"}
                if start + limit < len(chosen):
                    meta["continue"] = str(start + limit)
                self._answer(200, {"kind": "NodeList", "apiVersion": "v1", "metadata": meta,
                                   "items": items})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def kubeconfig(self, tmp: Path) -> Path:
        path = tmp / "kubeconfig"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "u", "user": {"token": "secret-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}],
        }))
        return path


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi([node(f"node-{i:04d}", ("InternalIP", f"10.0.{i // 250}.{i % 250 + 1}"))
                   for i in range(1203)])
    thread = threading.Thread(target=api.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api.server.shutdown()
        api.server.server_close()
        thread.join(10)


def test_kubernetes_client_lists_every_page(fake_api: FakeApi, tmp_path: Path) -> None:
    pytest.importorskip("kubernetes")
    lister = KubernetesNodes(NodeDiscovery(kubeconfig=fake_api.kubeconfig(tmp_path)))
    nodes = lister()
    assert len(nodes) == 1203
    assert nodes[0] == NodeAddresses("node-0000", (("InternalIP", "10.0.0.1"),))
    assert len(fake_api.requests) == 3  # 500 + 500 + 203
    first, auth = fake_api.requests[0]
    assert first["limit"] == [str(PAGE_SIZE)] and "continue" not in first
    assert fake_api.requests[1][0]["continue"] == ["500"]
    assert auth == "Bearer secret-token"
    targets, _ = node_targets(nodes, NodeDiscovery())
    assert targets[-1].healthz_url == "http://10.0.4.203:10256/healthz"


def test_label_selector_is_sent(fake_api: FakeApi, tmp_path: Path) -> None:
    pytest.importorskip("kubernetes")
    settings = NodeDiscovery(kubeconfig=fake_api.kubeconfig(tmp_path),
                             label_selector="kubernetes.io/hostname=node-0007")
    nodes = KubernetesNodes(settings)()
    assert [n.name for n in nodes] == ["node-0007"]
    assert fake_api.requests[0][0]["labelSelector"] == ["kubernetes.io/hostname=node-0007"]


def test_unusable_kubeconfig_is_a_usage_error(tmp_path: Path) -> None:
    pytest.importorskip("kubernetes")
    with pytest.raises(DiscoveryError, match="discovery: cannot configure"):
        KubernetesNodes(NodeDiscovery(kubeconfig=tmp_path / "missing"))


# ---------------------------------------------------------------- the poller follows the list


class FakeKubeProxy:
    """One loopback kube-proxy answering every node's polls (all targets share its URLs)."""

    async def start(self) -> None:
        page = fixture_bytes(V1_30)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            body = {b"/healthz": HEALTHY_128, b"/metrics": page}.get(path, b"iptables")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.address = ("127.0.0.1", port)

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()


def listed(*names: str) -> list[NodeAddresses]:
    return [NodeAddresses(n, (("InternalIP", "127.0.0.1"),)) for n in names]


async def wait_until(check: Any, what: str, deadline: float = 10.0) -> None:
    """Poll a condition with a deadline (a bound, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not check():
        assert loop.time() < end, f"{what}: not within {deadline}s"
        await asyncio.sleep(0.02)


async def test_nodes_added_and_removed_without_restart() -> None:
    kp = FakeKubeProxy()
    await kp.start()
    port = kp.address[1]
    current = listed("node-a", "node-b")
    calls = 0

    def source() -> list[NodeAddresses]:
        nonlocal calls
        calls += 1
        if current is None:
            raise ConnectionError("apiserver unavailable")
        return current

    settings = NodeDiscovery(healthz_port=port, metrics_port=port, refresh_interval=3600)
    cfg = build_config(None, {}, {"node": "unused", "interval": "0.05", "log_level": "error"})
    discovery = Discovery(source, settings)
    poller = Poller(cfg, discovery=discovery)
    try:
        await poller.start()
        assert not poller.ready  # nothing listed, nothing polled yet
        await wait_until(lambda: poller.ready, "ready after the first list and polls")
        assert [st.node for st in poller.snapshot()] == ["node-a", "node-b"]
        page = render_text(poller.snapshot()).decode()
        assert 'kpexporter_up{node="node-a"} 1.0' in page
        assert 'kpexporter_up{node="node-b"} 1.0' in page

        current = listed("node-b", "node-c")  # a joined, c left
        assert await discovery.refresh(poller)
        assert [st.node for st in poller.snapshot()] == ["node-b", "node-c"]
        await wait_until(lambda: poller.snapshot()[1].polls > 0, "node-c polled")
        page = render_text(poller.snapshot()).decode()
        assert 'node="node-a"' not in page
        assert 'kpexporter_up{node="node-c"} 1.0' in page
        assert set(poller._tasks) == {"node-b", "node-c"}  # node-a's loop was stopped

        b = poller.snapshot()[0]
        polls_before = b.polls
        current = None  # the apiserver fails: keep polling the last good list
        assert not await discovery.refresh(poller)
        assert [st.node for st in poller.snapshot()] == ["node-b", "node-c"]
        await wait_until(lambda: b.polls > polls_before, "node-b still polled")
    finally:
        await poller.stop()
        await kp.close()
    assert calls == 3


async def test_a_node_that_changes_address_keeps_its_state() -> None:
    settings = NodeDiscovery(refresh_interval=3600)
    cfg = build_config(None, {}, {"node": "unused", "log_level": "error"})
    poller = Poller(cfg, targets=[])
    first, _ = node_targets([NodeAddresses("n", (("InternalIP", "10.0.0.1"),))], settings)
    assert poller.set_targets(first) == (1, 0, 0)
    st = poller.snapshot()[0]
    st.polls = 7
    moved, _ = node_targets([NodeAddresses("n", (("InternalIP", "10.0.0.9"),))], settings)
    assert poller.set_targets(moved) == (0, 0, 1)
    assert poller.snapshot()[0] is st and st.polls == 7
    assert st.target.healthz_url == "http://10.0.0.9:10256/healthz"
    assert poller.set_targets([]) == (0, 1, 0)
    assert poller.snapshot() == [] and poller.ready


# ---------------------------------------------------------------- configuration and CLI


def test_config_file_discovery_settings(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("discovery:\n  kubernetes:\n    healthz_port: 1256\n"
                    "    address_types: [InternalIP, ExternalIP]\n    refresh_interval: 2m\n"
                    "    label_selector: role=worker\n")
    cfg = build_config(path, {}, {})
    assert cfg.discovery == NodeDiscovery(healthz_port=1256,
                                          address_types=("InternalIP", "ExternalIP"),
                                          refresh_interval=120.0, label_selector="role=worker")
    path.write_text("discovery:\n  kubernetes:\n")
    assert build_config(path, {}, {}).discovery == NodeDiscovery()
    assert build_config(None, {"KPEXPORTER_DISCOVERY": "kubernetes"}, {}).discovery == \
        NodeDiscovery()
    assert build_config(None, {}, {"discovery": "kubernetes"}).discovery == NodeDiscovery()


@pytest.mark.parametrize(("text", "message"), [
    ("discovery: dns\n", "discovery: must be {kubernetes: {...}}"),
    ("discovery:\n  kubernetes:\n    port: 1\n", "discovery: kubernetes.port: unknown key"),
    ("discovery:\n  kubernetes:\n    healthz_port: 70000\n",
     "discovery: kubernetes.healthz_port: must be a port number"),
    ("discovery:\n  kubernetes:\n    refresh_interval: -1\n",
     "discovery: kubernetes.refresh_interval:"),
    ("discovery:\n  kubernetes:\n    address_types: []\n",
     "discovery: kubernetes.address_types: must be a list"),
    ("discovery:\n  kubernetes: {}\ntargets:\n  - {node: a, healthz_url: 'http://a:1/healthz',"
     " metrics_url: 'http://a:2/metrics'}\n", "discovery: cannot be combined with targets"),
])
def test_config_file_discovery_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        build_config(path, {}, {})
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_serve_discover_nodes_without_a_cluster_exits_64(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("kubernetes")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["serve", "--discover-nodes", "--listen", "127.0.0.1:0"]) == 64
    err = capsys.readouterr().err
    assert err.startswith("kpexporter: discovery: cannot configure the Kubernetes client")
    assert len(err.strip().splitlines()) == 1
