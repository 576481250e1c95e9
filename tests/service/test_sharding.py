"""Sharding: each node in exactly one shard, stable, and the shard Prometheus computes.

The oracle for the hash is a real Prometheus: its ``hashmod`` relabel action must put every
node on the shard this exporter polls it from, or per-node scrapes would miss their replica.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from kpexporter.config.schema import ConfigError, Target, build_config
from kpexporter.config.shard import Shard, ordinal, parse_shard
from kpexporter.service.poller import Poller
from kpexporter.service.sharding import key, mine, shard_of
from tests.e2e.harness import PrometheusServer, ScrapeJob

ROOT = Path(__file__).resolve().parents[2]

NODES = [f"ip-10-0-{i // 250}-{i % 250}.eu-west-1.compute.internal" for i in range(5000)]


def targets(names: list[str]) -> list[Target]:
    return [Target(n, f"http://{n}:10256/healthz", f"http://{n}:10249/metrics") for n in names]


def test_5000_nodes_over_2_shards_each_in_exactly_one() -> None:
    shards = [mine(targets(NODES), Shard(i, 2)) for i in range(2)]
    polled = Counter(t.node for s in shards for t in s)
    assert set(polled) == set(NODES) and set(polled.values()) == {1}
    assert all(2000 < len(s) < 3000 for s in shards)  # a fair split, not all on one


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_going_from_n_to_n_plus_1_moves_only_the_nodes_whose_hash_moves(n: int) -> None:
    """A node's shard is a function of its name and N: nothing else can move it."""
    moved = {node for node in NODES if shard_of(node, n) != shard_of(node, n + 1)}
    assert moved == {node for node in NODES if key(node) % n != key(node) % (n + 1)}
    assert all(shard_of(node, n) == shard_of(node, n) for node in NODES)  # no state


def test_the_same_name_always_lands_on_the_same_shard() -> None:
    assert [shard_of(n, 5) for n in NODES[:50]] == [shard_of(n, 5) for n in NODES[:50]]
    assert mine(targets(NODES[:10]), None) == targets(NODES[:10])
    assert mine(targets(NODES[:10]), Shard(0, 1)) == targets(NODES[:10])


@pytest.mark.parametrize(("raw", "want"), [
    ("1/3", Shard(1, 3)), ("0/1", Shard(0, 1)), ("kpexporter-2/3", Shard(2, 3)),
    ("kube-proxy-exporter-0/2", Shard(0, 2)), ({"index": 1, "total": 2}, Shard(1, 2)),
    ({"pod": "kpexporter-1", "total": "2"}, Shard(1, 2)), (None, None), ("", None)])
def test_parse(raw: object, want: Shard | None) -> None:
    assert parse_shard(raw) == want


@pytest.mark.parametrize("raw", [
    "3/3", "-1/3", "1/0", "1", "kpexporter/2", "kpexporter-01/2", "-2/3", "1/x", 7,
    {"total": 2}, {"index": 0, "pod": "a-0", "total": 2}, {"index": 0, "total": 2, "x": 1},
    "kpexporter-5/3", "1/100000"])
def test_parse_refuses(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_shard(raw)


def test_ordinal() -> None:
    assert ordinal("kpexporter-0") == 0
    assert ordinal("a-b-12") == 12
    for bad in ("kpexporter", "-3", "kpexporter-", "kpexporter-03", "kpexporter-x1"):
        with pytest.raises(ValueError):
            ordinal(bad)


def test_flag_environment_and_file_spellings(tmp_path: object) -> None:
    cfg = build_config(None, {"KPEXPORTER_SHARD": "kpexporter-1/2"}, {"node": "x"})
    assert cfg.shard == Shard(1, 2)
    assert build_config(None, {}, {"node": "x", "shard": "0/4"}).shard == Shard(0, 4)
    with pytest.raises(ConfigError, match=r"--shard: .*does not end in -<ordinal>"):
        build_config(None, {}, {"node": "x", "shard": "kpexporter/2"})


def test_the_poller_keeps_only_its_shard_of_listed_and_discovered_targets() -> None:
    names = NODES[:200]
    mk = [{"node": n, "healthz_url": f"http://{n}:10256/healthz",
           "metrics_url": f"http://{n}:10249/metrics"} for n in names]
    polled: list[str] = []
    for i in range(3):
        cfg = build_config(None, {}, {"node": "x", "targets": mk, "shard": f"{i}/3"})
        listed = Poller(cfg)
        assert {st.node for st in listed.states} == {n for n in names if shard_of(n, 3) == i}
        discovered = Poller(build_config(None, {}, {"node": "x", "shard": f"{i}/3"}),
                            targets=())
        discovered.set_targets(targets(names))
        assert [st.node for st in discovered.states] == [st.node for st in listed.states]
        polled += [st.node for st in listed.states]
    assert sorted(polled) == sorted(names)


def _snake(relabel: dict[str, object]) -> dict[str, object]:
    names = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    return {names.get(k, k): v for k, v in relabel.items()}


@pytest.mark.e2e
def test_prometheus_routes_each_node_scrape_to_the_replica_polling_it(tmp_path: Path) -> None:
    """The sharded overlay's relabelings, run by Prometheus 2.42 on node names standing in
    for discovered Nodes: each node's scrape must go to the pod whose shard polls it."""
    sc = yaml.safe_load((ROOT / "deploy/kubernetes/overlays/sharded/"
                         "scrapeconfig-kpexporter.yaml").read_text())
    total = int(next(r["modulus"] for r in sc["spec"]["relabelings"] if "modulus" in r))
    names = [*NODES[:300], "node-ü", "a"]
    job = ScrapeJob("shards", targets=tuple(f"{n}:9" for n in names), scrape_interval="1h",
                    extra={"relabel_configs": [
                        {"source_labels": ["__address__"], "regex": "(.*):9",
                         "target_label": "__meta_kubernetes_node_name"},
                        *(_snake(r) for r in sc["spec"]["relabelings"])]})
    with PrometheusServer(tmp_path, [job]) as prom:
        for _ in range(300):  # target discovery runs once, a moment after start
            found = prom.targets()
            if len(found) == len(names):
                break
            time.sleep(0.1)
    got = {t["labels"]["instance"]: t["scrapeUrl"] for t in found}
    assert got == {n: f"http://kpexporter-{shard_of(n, total)}.kpexporter.kube-system.svc:19249"
                      f"/metrics?node={quote(n)}" for n in names}
