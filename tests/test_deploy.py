"""The shipped manifests and Dockerfile say what the code accepts."""

from __future__ import annotations

from pathlib import Path

import yaml

from kpexporter.cli.main import build_parser, make_config

ROOT = Path(__file__).resolve().parents[1]


def test_daemonset_args_are_valid_serve_args() -> None:
    ds = yaml.safe_load((ROOT / "deploy/kubernetes/daemonset.yaml").read_text())
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True  # kube-proxy's metrics bind to 127.0.0.1
    c = spec["containers"][0]
    args = build_parser().parse_args(c["args"])
    cfg = make_config(args)
    assert cfg.listen_port == c["ports"][0]["containerPort"]
    assert {e["name"] for e in c["env"]} >= {"NODE_NAME"}
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_kustomization_lists_existing_files() -> None:
    k = yaml.safe_load((ROOT / "deploy/kubernetes/kustomization.yaml").read_text())
    for res in k["resources"]:
        assert (ROOT / "deploy/kubernetes" / res).is_file()


def test_dockerfile_runs_serve_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["kpexporter"]' in text and 'CMD ["serve"]' in text
    assert "USER 65534" in text
