"""atheris target: the exporter-toolkit web config loader. Only ``WebConfigError`` may escape,
and its message is one line. Relative certificate paths resolve in a scratch copy of the test
certificates, so the target reads nothing else on the machine by accident."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import atheris  # type: ignore[import-untyped]

from tests.fuzz import _common

with atheris.instrument_imports(include=["kpexporter"]):
    from kpexporter.security.webconfig import WebConfigError, parse_web_config

BASE = Path(tempfile.mkdtemp(prefix="kpx-fuzz-webconfig-"))
for pem in (_common.ROOT / "tests" / "data" / "web-config").glob("testonly-*"):
    shutil.copy(pem, BASE / pem.name)


def test_one_input(data: bytes) -> None:
    if b"/dev/" in data or b"/proc/" in data or b"/sys/" in data:
        return  # absolute paths to device files: not the parser's input space
    try:
        parse_web_config(data, BASE)
    except WebConfigError as e:
        assert "\n" not in str(e), "a config error must be one line"


if __name__ == "__main__":
    _common.run(test_one_input)
