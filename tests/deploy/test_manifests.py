"""deploy/kubernetes builds with kustomize, every object is valid, and the pieces fit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from kpexporter.config.schema import build_config
from kpexporter.config.shard import Shard
from tests.deploy.manifests import BUILDS, KUSTOMIZE, ROOT, build, validate

ALL = {name: build(path) for name, path in BUILDS.items()}
# The builds that scrape through ScrapeConfigs (central mode), and how many each carries.
SCRAPE_CONFIGS = {"central": 2, "sharded": 2}
WORKLOADS = ("DaemonSet", "Deployment", "StatefulSet")


def _find(objs: tuple[dict[str, Any], ...], kind: str, name: str = "") -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind and (not name or o["metadata"]["name"] == name)]


def _one(objs: tuple[dict[str, Any], ...], kind: str, name: str = "") -> dict[str, Any]:
    found = _find(objs, kind, name)
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def _workload(objs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """The one DaemonSet, Deployment or StatefulSet of a build."""
    found = [o for o in objs if o["kind"] in WORKLOADS]
    assert len(found) == 1, f"{len(found)} workloads: {[o['kind'] for o in found]}"
    return found[0]


def test_every_overlay_is_built() -> None:
    """A new overlay is validated, parsed and checked (deploy/checkov.sh takes every one)
    only once it is in BUILDS."""
    overlays = KUSTOMIZE / "overlays"
    assert {p.name for p in overlays.iterdir() if (p / "kustomization.yaml").is_file()} == \
        {name for name, path in BUILDS.items() if path.parent == overlays}


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_every_object_validates(name: str) -> None:
    skipped = []
    for obj in ALL[name]:
        if obj["kind"] == "ScrapeConfig":  # no vendored schema: see test_scrapeconfig_…
            skipped.append(obj)
            continue
        validate(obj)
    assert len(skipped) == SCRAPE_CONFIGS.get(name, 0)


def test_validation_rejects_what_it_should() -> None:
    """The validators are not vacuous: a typo'd field and a wrong type fail."""
    ds = yaml.safe_load(yaml.safe_dump(_one(ALL["base"], "DaemonSet")))
    ds["spec"]["template"]["spec"]["hostNetwrok"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(ds)
    sm = yaml.safe_load(yaml.safe_dump(_one(ALL["default"], "ServiceMonitor")))
    sm["spec"]["endpoints"][0]["relabelings"][0]["action"] = "rename"
    with pytest.raises(jsonschema.ValidationError):
        validate(sm)
    rule = yaml.safe_load(yaml.safe_dump(_one(ALL["default"], "PrometheusRule")))
    rule["spec"]["groups"][0]["rules"][0]["for"] = "15 minutes"
    with pytest.raises(jsonschema.ValidationError):
        validate(rule)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_selectors_are_filled_and_match(name: str) -> None:
    objs = ALL[name]
    service = _one(objs, "Service", "kpexporter")
    w = _workload(objs)
    pod_labels = w["spec"]["template"]["metadata"]["labels"]
    selector = w["spec"]["selector"]["matchLabels"]
    assert selector and selector.items() <= pod_labels.items()
    assert service["spec"]["selector"] and service["spec"]["selector"].items() <= pod_labels.items()
    for monitor in _find(objs, "ServiceMonitor"):
        assert monitor["spec"]["selector"]["matchLabels"].items() <= \
            service["metadata"]["labels"].items()
    for monitor in _find(objs, "PodMonitor"):
        assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    if w["kind"] == "StatefulSet":  # its pods' DNS names (kpexporter-0.kpexporter) need this
        assert w["spec"]["serviceName"] == service["metadata"]["name"]
        assert service["spec"]["clusterIP"] == "None"
    assert {o["metadata"].get("namespace") for o in objs if o["kind"] not in
            ("PriorityClass", "ClusterRole", "ClusterRoleBinding")} == {"kube-system"}


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_pod_is_locked_down(name: str) -> None:
    objs = ALL[name]
    w = _workload(objs)
    spec = w["spec"]["template"]["spec"]
    image_kust = KUSTOMIZE / "components/image/kustomization.yaml"
    base_images = yaml.safe_load(image_kust.read_text())["images"]
    assert spec["priorityClassName"] == "kpexporter"
    assert _one(objs, "PriorityClass", "kpexporter")["preemptionPolicy"] == "Never"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = spec["containers"]
    assert c["image"] == f"{base_images[0]['newName']}:{base_images[0]['newTag']}"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"requests", "limits"} <= c["resources"].keys()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] in ("/readyz", "/healthz")
    if w["kind"] == "DaemonSet":
        assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet"
        assert spec["tolerations"] == [{"operator": "Exists"}]
        node_name = next(e for e in c["env"] if e["name"] == "NODE_NAME")
        assert node_name["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


def _serve_args(args: list[str]) -> list[str]:
    assert args[0] == "serve"
    return args[1:]


_FIELDS = {"metadata.name": "{pod}", "spec.nodeName": "n", "metadata.namespace": "kube-system"}
_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _pod_envs(w: dict[str, Any]) -> list[dict[str, str]]:
    """The container environment of each pod ``w`` runs, the downward API filled in: a
    StatefulSet's pods are NAME-0 to NAME-(replicas-1); one pod stands for any other's."""
    (c,) = w["spec"]["template"]["spec"]["containers"]
    name = w["metadata"]["name"]
    pods = [f"{name}-{i}" for i in range(w["spec"]["replicas"])] \
        if w["kind"] == "StatefulSet" else [f"{name}-x7k2p"]
    out = []
    for pod in pods:
        env = {}
        for e in c.get("env", []):
            env[e["name"]] = e["value"] if "value" in e else \
                _FIELDS[e["valueFrom"]["fieldRef"]["fieldPath"]].format(pod=pod)
        out.append(env)
    return out


def _expand(arg: str, env: dict[str, str]) -> str:
    """What the kubelet makes of ``$(VAR)`` in an argument: the variable if defined, else
    left as written; ``$$`` is a ``$``."""
    return _REF.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
                    arg)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_container_args_are_accepted_by_serve(name: str, tmp_path: Path) -> None:
    """The args and config file each build passes are valid for `kpexporter serve`: parsed
    by kpexporter's own config parser, for every pod (each StatefulSet pod its shard)."""
    objs = ALL[name]
    w = _workload(objs)
    for cm in _find(objs, "ConfigMap"):
        for fname, text in cm.get("data", {}).items():
            (tmp_path / fname).write_text(text)
    shards = [_check_serve_args(name, w, tmp_path, env) for env in _pod_envs(w)]
    if w["kind"] == "StatefulSet":
        replicas = w["spec"]["replicas"]
        assert shards == [Shard(i, replicas) for i in range(replicas)]
    else:
        assert shards == [None]


def _check_serve_args(name: str, w: dict[str, Any], tmp_path: Path,
                      env: dict[str, str]) -> Shard | None:
    (c,) = w["spec"]["template"]["spec"]["containers"]
    flags: dict[str, Any] = {}
    args = [_expand(a, env) for a in _serve_args(c["args"])]
    i = 0
    while i < len(args):
        opt, _, value = args[i].partition("=")
        if not value:
            i += 1
            value = args[i]
        flags[opt.lstrip("-").replace("-", "_")] = value
        i += 1
    config = flags.pop("config", None)
    web = flags.pop("web_config_file", None)
    cfg = build_config(tmp_path / Path(config).name if config else None, env, flags)
    assert cfg.listen_port == c["ports"][0]["containerPort"]
    if name in SCRAPE_CONFIGS:  # central mode: the nodes come from discovery
        assert cfg.discovery is not None
    if name == "remote-write":
        assert [dict(rw.external_labels) for rw in cfg.remote_write] == [
            {"ident": "${NODE_NAME}"}]
    if web:
        assert (tmp_path / Path(web).name).is_file()
    return cfg.shard


def _relabel(configs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Relabel rules as comparable tuples, whether in operator (camelCase) or Prometheus form."""
    return [(r.get("action", "replace").lower(),
             tuple(r.get("sourceLabels", r.get("source_labels", ()))),
             r.get("targetLabel", r.get("target_label")), r.get("regex"), r.get("replacement"))
            for r in configs]


def _prom_jobs(name: str) -> dict[str, dict[str, Any]]:
    cfg = yaml.safe_load((ROOT / "deploy/prometheus" / name).read_text())
    return {j["job_name"]: j for j in cfg["scrape_configs"]}


@pytest.mark.parametrize("build_name", ["default", "web-config"])
def test_servicemonitor_splits_jobs_like_the_plain_config(build_name: str) -> None:
    """kpexporter_* under job="kpexporter", everything else under job="kube-proxy",
    instance = node, exactly as deploy/prometheus/daemonset.yml does without the operator."""
    (sm,) = _find(ALL[build_name], "ServiceMonitor")
    jobs = _prom_jobs("daemonset.yml")
    assert len(sm["spec"]["endpoints"]) == 2
    for ep in sm["spec"]["endpoints"]:
        job = next(r["replacement"] for r in ep["relabelings"] if r["targetLabel"] == "job")
        assert _relabel(ep["metricRelabelings"]) == _relabel(jobs[job]["metric_relabel_configs"])
        assert ("replace", ("__meta_kubernetes_pod_node_name",), "instance", None, None) in \
            _relabel(ep["relabelings"])
    assert {r["replacement"] for ep in sm["spec"]["endpoints"] for r in ep["relabelings"]
            if r["targetLabel"] == "job"} == set(jobs) == {"kpexporter", "kube-proxy"}


def test_scrapeconfig_is_the_plain_central_config() -> None:
    """The ScrapeConfigs (no vendored CRD schema) say what deploy/prometheus/central.yml
    says, which promtool checks (test_prometheus_configs_pass_promtool)."""
    jobs = _prom_jobs("central.yml")
    scs = _find(ALL["central"], "ScrapeConfig")
    assert len(scs) == 2
    for sc in scs:
        spec = sc["spec"]
        job = next(r["replacement"] for r in spec["relabelings"] if r["targetLabel"] == "job")
        plain = jobs[job]
        assert spec["kubernetesSDConfigs"] == [{"role": "Node"}]
        assert plain["kubernetes_sd_configs"] == [{"role": "node"}]
        assert _relabel([r for r in spec["relabelings"] if r["targetLabel"] != "job"]) == \
            _relabel(plain["relabel_configs"])
        assert _relabel(spec["metricRelabelings"]) == _relabel(plain["metric_relabel_configs"])
        assert spec["metricsPath"] == plain.get("metrics_path", "/metrics")


def test_sharded_scrapeconfigs_route_each_node_to_its_shard() -> None:
    """The sharded ScrapeConfigs are central's with one change: each node's scrape goes to
    the StatefulSet pod whose shard polls it (hashmod, modulus = replicas = the N of
    --shard). Those relabelings are the ones tests/service/test_sharding.py runs through a
    real Prometheus (from overlays/sharded/scrapeconfig-kpexporter.yaml)."""
    objs = ALL["sharded"]
    sts = _one(objs, "StatefulSet", "kpexporter")
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    shard_arg = c["args"][c["args"].index("--shard") + 1]
    assert shard_arg == f"$(POD_NAME)/{sts['spec']['replicas']}"
    address = (f"{sts['metadata']['name']}-$1.{sts['spec']['serviceName']}."
               f"{sts['metadata']['namespace']}.svc:{c['ports'][0]['containerPort']}")
    route = [{"action": "hashmod", "sourceLabels": ["__meta_kubernetes_node_name"],
              "modulus": sts["spec"]["replicas"], "targetLabel": "__tmp_shard"},
             {"action": "replace", "sourceLabels": ["__tmp_shard"],
              "targetLabel": "__address__", "replacement": address}]
    scs = _find(objs, "ScrapeConfig")
    assert len(scs) == SCRAPE_CONFIGS["sharded"]
    for sc in scs:
        central = _one(ALL["central"], "ScrapeConfig", sc["metadata"]["name"])
        want = [route if r["targetLabel"] == "__address__" else [r]
                for r in central["spec"]["relabelings"]]
        assert sc["spec"]["relabelings"] == [r for rs in want for r in rs]
        assert {**sc["spec"], "relabelings": None} == {**central["spec"], "relabelings": None}
    tested = yaml.safe_load((KUSTOMIZE / "overlays/sharded/scrapeconfig-kpexporter.yaml")
                            .read_text())
    assert _one(objs, "ScrapeConfig", tested["metadata"]["name"])["spec"] == tested["spec"]


@pytest.mark.parametrize("name", ["daemonset.yml", "central.yml"])
def test_prometheus_configs_pass_promtool(name: str, tmp_path: Path) -> None:
    """Debian's Prometheus is built without Kubernetes discovery, so the check runs with each
    kubernetes_sd_configs swapped for an empty static_configs: every other line (relabeling
    regexes, rule files) is promtool's to judge."""
    from tests.promtool import promtool_path

    cfg = yaml.safe_load((ROOT / "deploy/prometheus" / name).read_text())
    cfg["rule_files"] = [str((ROOT / "deploy/prometheus" / f).resolve()) for f in cfg["rule_files"]]
    for job in cfg["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs")
        job["static_configs"] = [{"targets": []}]
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    promtool = promtool_path()
    assert promtool, "promtool missing (make promtool)"
    out = subprocess.run([promtool, "check", "config", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


def test_podmonitor_component_builds(tmp_path: Path) -> None:
    """The PodMonitor variant (base + components/podmonitor) builds and validates."""
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(KUSTOMIZE / "base", tmp_path)],
        "components": [os.path.relpath(KUSTOMIZE / "components/podmonitor", tmp_path)]}))
    objs = build(tmp_path)
    pm = _one(objs, "PodMonitor")
    sm = _one(ALL["default"], "ServiceMonitor")
    assert pm["spec"]["podMetricsEndpoints"] == sm["spec"]["endpoints"]
    for obj in objs:
        validate(obj)
    typo = yaml.safe_load(yaml.safe_dump(pm))
    typo["spec"]["podMetricsEndpoints"][0]["portt"] = "metrics"
    with pytest.raises(jsonschema.ValidationError):
        validate(typo)


def test_generated_files_are_up_to_date() -> None:
    out = subprocess.run([sys.executable, str(KUSTOMIZE / "generate.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_prometheusrule_carries_every_rule_file() -> None:
    rule = _one(ALL["default"], "PrometheusRule")
    expected = []
    for path in sorted((ROOT / "alerts").glob("*.yaml")):
        expected.extend(yaml.safe_load(path.read_text())["groups"])
    assert rule["spec"]["groups"] == expected and expected


def test_dashboards_become_sidecar_configmaps(tmp_path: Path) -> None:
    """Any dashboards/*.json becomes a ConfigMap the Grafana sidecar loads, with the
    import-time data-source input turned into a template variable."""
    sys.path.insert(0, str(KUSTOMIZE))
    try:
        import generate  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    (tmp_path / "alerts").mkdir()
    boards = tmp_path / "dashboards"
    boards.mkdir()
    board = {"__inputs": [{"name": "DS_PROMETHEUS", "type": "datasource",
                           "pluginId": "prometheus"}],
             "title": "kube-proxy", "uid": "kpx",
             "panels": [{"datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
                         "targets": [{"expr": "kpexporter_up"}]}]}
    (boards / "kube_proxy.json").write_text(__import__("json").dumps(board))
    files = generate.generated(tmp_path)
    (cm_path,) = [p for p in files if p.name == "kube_proxy.yaml"]
    cm = yaml.safe_load(files[cm_path])
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    validate(cm)
    loaded = __import__("json").loads(cm["data"]["kube_proxy.json"])
    assert "__inputs" not in loaded and "DS_PROMETHEUS" not in cm["data"]["kube_proxy.json"]
    assert loaded["panels"][0]["datasource"]["uid"] == "${datasource}"
    assert loaded["templating"]["list"][0]["type"] == "datasource"
    kust = [p for p in files if p.name == "kustomization.yaml" and "dashboards" in str(p)]
    assert yaml.safe_load(files[kust[0]])["resources"] == ["kube_proxy.yaml"]


def test_web_config_overlay_mounts_what_its_web_config_names() -> None:
    ds = _one(ALL["web-config"], "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    web_arg = next(a for a in c["args"] if a.startswith("--web-config-file="))
    mount = c["volumeMounts"][0]["mountPath"]
    assert Path(web_arg.split("=", 1)[1]).parent == Path(mount)
    cm = next(o for o in ALL["web-config"] if o["kind"] == "ConfigMap"
              and o["metadata"]["name"].startswith("kpexporter-web-config"))
    web = yaml.safe_load(cm["data"]["web-config.yml"])
    sources = spec["volumes"][0]["projected"]["sources"]
    assert sources[0]["configMap"]["name"] == cm["metadata"]["name"]
    paths = {i["path"] for i in sources[1]["secret"]["items"]}
    assert {web["tls_server_config"]["cert_file"], web["tls_server_config"]["key_file"]} == paths
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["scheme"] == "HTTPS"
    sm = _one(ALL["web-config"], "ServiceMonitor")
    assert all(ep["scheme"] == "https" and "basicAuth" in ep for ep in sm["spec"]["endpoints"])
    assert web == yaml.safe_load((ROOT / "deploy/web-config/web-config.yml").read_text())
