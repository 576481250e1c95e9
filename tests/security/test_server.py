"""The uvicorn glue: one config for TLS and plain HTTP, real TLS servers, reload on SIGHUP."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from kpexporter.security.server import WebUvicornConfig, make_uvicorn_config
from kpexporter.security.webauth import WebSecurityMiddleware
from kpexporter.security.webconfig import (
    TLSServerConfig,
    WebConfig,
    WebConfigError,
    load_web_config,
)
from tests.security.conftest import (
    ALICE_HASH,
    APP,
    BOB_HASH,
    CERT,
    DATA,
    KEY,
    Serve,
    client_context,
    wait,
)

# --- the config --------------------------------------------------------------------------------


def test_make_uvicorn_config_wraps_once() -> None:
    web = load_web_config(DATA / "everything.good.yml")
    config = make_uvicorn_config(APP, "127.0.0.1", 0, web)
    assert isinstance(config, WebUvicornConfig) and config.server_header is False
    assert isinstance(config.app, WebSecurityMiddleware) and config.app.app is APP
    wrapped = WebSecurityMiddleware(APP, web)
    assert make_uvicorn_config(wrapped, "127.0.0.1", 0, web).app is wrapped
    assert make_uvicorn_config(APP, "127.0.0.1", 0, None).app is APP


@pytest.mark.parametrize("option", ["ssl_ciphers", "limit_concurrency", "server_header"])
def test_make_uvicorn_config_refuses_what_it_sets(option: str) -> None:
    web = load_web_config(DATA / "tls.good.yml")
    with pytest.raises(TypeError, match=option):
        options: dict[str, Any] = {option: "x"}
        make_uvicorn_config(APP, "127.0.0.1", 0, web, **options)


def test_encrypted_key_fails_before_anything_could_prompt_for_a_password() -> None:
    tls = TLSServerConfig(cert_file=CERT, key_file=DATA / "testonly-encrypted.key")
    with pytest.raises(WebConfigError, match="is encrypted"):
        make_uvicorn_config(APP, "127.0.0.1", 0, WebConfig(tls=tls))


# --- TLS ---------------------------------------------------------------------------------------


def test_real_tls13_server_with_basic_auth(serve: Serve) -> None:
    web = load_web_config(DATA / "everything.good.yml")  # TLS13 minimum, alice, X-Frame-Options
    url = serve(web).url
    with httpx.Client(verify=client_context()) as client:
        denied = client.get(url)
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"] == "Basic"
        ok = client.get(url, auth=("alice", "alice-password"))
        assert ok.status_code == 200 and ok.text == "hello"
        assert ok.headers["x-frame-options"] == "deny"
        assert "server" not in ok.headers  # issue 9: no "server: uvicorn"
        ssl_object = ok.extensions["network_stream"].get_extra_info("ssl_object")
        assert ssl_object.version() == "TLSv1.3"
        assert ssl_object.selected_alpn_protocol() in (None, "http/1.1")
    with (
        httpx.Client(verify=client_context(maximum=ssl.TLSVersion.TLSv1_2)) as old,
        pytest.raises(httpx.ConnectError),
    ):
        old.get(url)


def test_plain_http_has_no_server_header_either(serve: Serve) -> None:
    response = httpx.get(serve(None).url)
    assert response.status_code == 200 and "server" not in response.headers


def test_real_mutual_tls(serve: Serve) -> None:
    web = WebConfig(tls=TLSServerConfig(cert_file=CERT, key_file=KEY, client_ca_file=CERT,
                                        client_auth_type="RequireAndVerifyClientCert"))
    url = serve(web).url
    with httpx.Client(verify=client_context(cert=True)) as client:
        response = client.get(url)
        assert response.status_code == 200
    # Under TLS 1.3 the server checks the client's certificate after the client's handshake
    # is done, so the refusal shows up on connect or on the first read.
    with httpx.Client(verify=client_context()) as anonymous, pytest.raises(httpx.TransportError):
        anonymous.get(url)


# --- reload ------------------------------------------------------------------------------------


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A fresh certificate for localhost (a second key pair, for rotation)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-days", "2", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def test_reload_swaps_users_and_certificates_and_keeps_the_old_on_a_bad_file(
    serve: Serve, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    shutil.copy(CERT, tmp_path / "tls.crt")
    shutil.copy(KEY, tmp_path / "tls.key")
    path = tmp_path / "web.yml"
    tls = "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n"
    path.write_text(f"{tls}basic_auth_users:\n  alice: {ALICE_HASH}\n")
    running = serve(load_web_config(path), config_path=path)
    new_cert, new_key = _self_signed(tmp_path, "rotated")

    def status(cafile: Path, user: str) -> int:
        with httpx.Client(verify=client_context(cafile)) as client:
            return client.get(running.url, auth=(user, f"{user}-password")).status_code

    assert status(CERT, "alice") == 200
    shutil.copy(new_cert, tmp_path / "tls.crt")
    shutil.copy(new_key, tmp_path / "tls.key")
    path.write_text(f"{tls}basic_auth_users:\n  bob: {BOB_HASH}\n")
    assert running.call(running.config.reload_web_config) is True
    assert status(new_cert, "bob") == 200 and status(new_cert, "alice") == 401
    with pytest.raises(httpx.ConnectError):
        status(CERT, "bob")  # the old certificate is gone for new connections

    path.write_text("basic_auth_users:\n  bob: plaintext\n")
    with caplog.at_level(logging.ERROR, logger="kpexporter"):
        assert running.call(running.config.reload_web_config) is False
    assert status(new_cert, "bob") == 200  # still the last good config
    (failed,) = [r for r in caplog.records if r.getMessage() == "web_config_reload_failed"]
    assert "hashedSecret too short" in str(failed.__dict__)


# --- a real `kpexporter serve` -----------------------------------------------------------------


def test_sighup_reloads_users_and_a_bad_file_keeps_the_old_config(tmp_path: Path) -> None:
    from tests.e2e.harness import ExporterProcess, free_port

    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  alice: {ALICE_HASH}\n")
    nowhere = f"http://127.0.0.1:{free_port()}"  # no kube-proxy needed to test the front door
    exp = ExporterProcess(tmp_path, healthz_url=f"{nowhere}/healthz",
                          metrics_url=f"{nowhere}/metrics", node="n",
                          extra_args=["--web-config-file", str(web)])
    exp.start()
    try:
        def status(user: str) -> int:
            with httpx.Client(timeout=5.0) as c:
                return c.get(exp.metrics_url, auth=(user, f"{user}-password")).status_code

        assert status("alice") == 200 and status("bob") == 401
        web.write_text(f"basic_auth_users:\n  bob: {BOB_HASH}\n")
        _sighup(exp)
        assert wait(lambda: status("alice") == 401), exp.describe()
        assert status("bob") == 200

        web.write_text("basic_auth_users:\n  bob: [not, a, hash]\n")
        _sighup(exp)
        assert wait(lambda: "web_config_reload_failed" in exp.log_text()), exp.describe()
        assert exp.running() and status("bob") == 200 and status("alice") == 401
        log = exp.log_text()
        assert log.count("web_config_reload_failed") == 1 and "Traceback" not in log
        assert "basic_auth_users.bob: must be a bcrypt hash, got a list" in log
    finally:
        code = exp.stop()
        assert code == 0, exp.describe()


def _sighup(exp: object) -> None:
    """SIGHUP the exporter (the harness's ``send`` signals only once: it keeps that for stop)."""
    proc = exp._process.proc  # type: ignore[attr-defined]
    os.kill(proc.pid, signal.SIGHUP)
