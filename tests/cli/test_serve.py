"""serve's event loop choice (``event_loop:``): uvloop for plain HTTP, asyncio's own with TLS."""

from __future__ import annotations

import sys

import pytest
import uvloop

from kpexporter.cli.serve import loop_factory
from kpexporter.config.schema import ConfigError


def test_auto_is_uvloop_without_tls_and_asyncio_with_it() -> None:
    assert loop_factory("auto", tls=False) is uvloop.new_event_loop
    assert loop_factory("auto", tls=True) is None
    assert loop_factory("asyncio", tls=False) is None
    assert loop_factory("uvloop", tls=False) is uvloop.new_event_loop


def test_uvloop_with_tls_is_a_config_error_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"^event_loop: uvloop cannot serve .*TLS"):
        loop_factory("uvloop", tls=True)


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    assert loop_factory("auto", tls=False) is None
    with pytest.raises(ConfigError, match=r"^event_loop: uvloop is not installed"):
        loop_factory("uvloop", tls=False)
