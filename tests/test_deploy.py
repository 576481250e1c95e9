"""The shipped manifests and Dockerfile say what the code accepts."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from kpexporter.cli.main import build_parser, make_config

ROOT = Path(__file__).resolve().parents[1]


def test_daemonset_args_are_valid_serve_args() -> None:
    ds = yaml.safe_load((ROOT / "deploy/kubernetes/base/daemonset.yaml").read_text())
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True  # kube-proxy's metrics bind to 127.0.0.1
    c = spec["containers"][0]
    args = build_parser().parse_args(c["args"])
    cfg = make_config(args)
    assert cfg.listen_port == c["ports"][0]["containerPort"]
    assert {e["name"] for e in c["env"]} >= {"NODE_NAME"}
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_kustomizations_list_existing_files() -> None:
    for path in (ROOT / "deploy/kubernetes").rglob("kustomization.yaml"):
        k = yaml.safe_load(path.read_text())
        for res in (*k.get("resources", ()), *k.get("components", ())):
            target = path.parent / res
            assert target.is_file() or (target / "kustomization.yaml").is_file(), (path, res)


def test_dockerfile_runs_serve_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["kpexporter"]' in text and 'CMD ["serve"]' in text
    assert "USER 65534" in text


def test_every_phony_make_target_has_a_rule() -> None:
    """``make soak`` once answered "Nothing to be done": a declared target must do something."""
    text = (ROOT / "Makefile").read_text()
    phony = [t for line in text.splitlines() if line.startswith(".PHONY:")
             for t in line.split()[1:]]
    assert {"soak", "check-metrics"} <= set(phony)
    for target in phony:
        dry = subprocess.run(["make", "-n", "-C", str(ROOT), target], capture_output=True,
                             text=True, timeout=60)
        assert dry.returncode == 0, (target, dry.stderr)
        assert "Nothing to be done" not in dry.stdout + dry.stderr, target
        assert re.search(rf"^{re.escape(target)}:", text, re.M), target
