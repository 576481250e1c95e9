"""Web config loading and TLS contexts (the uvicorn glue is tested in test_server.py).

The data files under tests/data/web-config/ are the spec (exporter-toolkit's naming):
``*.good.yml`` load; ``*.bad.yml`` fail with the exact one-line error on their ``# want:``
line; ``*.unsupported.yml`` are valid for the Go toolkit but refused by kpexporter on purpose
(``# why:`` says why). ``promtool check web-config`` (Prometheus 2.42 = exporter-toolkit
v0.8.2) is the oracle: it must accept every good and unsupported file and reject every bad one.
The ``testonly-*`` keys there are public and for tests only.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kpexporter.security.webconfig import (
    CIPHER_SUITES,
    TLSServerConfig,
    WebConfig,
    WebConfigError,
    build_ssl_context,
    load_web_config,
    parse_web_config,
)

DATA = Path(__file__).parent.parent / "data" / "web-config"
DEPLOY = Path(__file__).parent.parent.parent / "deploy" / "web-config"
CERT = DATA / "testonly-selfsigned.crt"
KEY = DATA / "testonly-selfsigned.key"
PROMTOOL = shutil.which("promtool")
SAMPLE_PASSWORD = "change-me-kpexporter"  # what the deploy samples' comments promise

GOOD = sorted(DATA.glob("*.good.yml"))
BAD = sorted(DATA.glob("*.bad.yml"))
UNSUPPORTED = sorted(DATA.glob("*.unsupported.yml"))


def _want(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# want: "), f"{path.name} must start with '# want: <error>'"
    return first.removeprefix("# want: ").format(dir=path.parent, ciphers=", ".join(CIPHER_SUITES))


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


# --- the data files ----------------------------------------------------------------------------


def test_data_files_are_there() -> None:
    assert len(GOOD) >= 10 and len(BAD) >= 30 and len(UNSUPPORTED) >= 5


@pytest.mark.parametrize("path", GOOD, ids=_ids(GOOD))
def test_good_file_loads(path: Path) -> None:
    assert isinstance(load_web_config(path), WebConfig)


@pytest.mark.parametrize("path", BAD + UNSUPPORTED, ids=_ids(BAD + UNSUPPORTED))
def test_bad_file_fails_with_exact_error(path: Path) -> None:
    with pytest.raises(WebConfigError) as info:
        load_web_config(path)
    assert str(info.value) == _want(path)
    assert "\n" not in str(info.value)


def _promtool(path: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, "check", "web-config", str(path)], capture_output=True, text=True, check=False
    )


@pytest.mark.promtool
@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")
@pytest.mark.parametrize("path", GOOD + UNSUPPORTED, ids=_ids(GOOD + UNSUPPORTED))
def test_promtool_accepts(path: Path) -> None:
    result = _promtool(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.promtool
@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")
@pytest.mark.parametrize("path", BAD, ids=_ids(BAD))
def test_promtool_rejects(path: Path) -> None:
    result = _promtool(path)
    assert result.returncode != 0 and "FAILED" in result.stdout + result.stderr


# --- what good files mean ----------------------------------------------------------------------


def test_empty_file_means_plain_http_without_auth(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("")
    assert load_web_config(path) == WebConfig(tls=None, headers={}, http2=True, basic_auth_users={})
    assert load_web_config(DATA / "empty.good.yml") == WebConfig()


def test_tls_defaults_and_relative_paths() -> None:
    web = load_web_config(DATA / "tls.good.yml")
    assert web.tls == TLSServerConfig(
        cert_file=CERT,
        key_file=KEY,
        client_auth_type="NoClientCert",
        client_ca_file=None,
        min_version="TLS12",
        max_version=None,
        cipher_suites=(),
        prefer_server_cipher_suites=True,
        curve_preferences=(),
    )


def test_relative_paths_do_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_web_config(DATA / "tls.good.yml").tls is not None


def test_absolute_paths_stay(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config:\n  cert_file: {CERT}\n  key_file: {KEY}\n")
    tls = load_web_config(path).tls
    assert tls is not None and tls.cert_file == CERT and tls.key_file == KEY


def test_all_tls_fields() -> None:
    tls = load_web_config(DATA / "tls_all_fields.good.yml").tls
    assert tls is not None
    assert tls.client_auth_type == "RequireAndVerifyClientCert"
    assert tls.client_ca_file == CERT
    assert (tls.min_version, tls.max_version) == ("TLS12", "TLS13")
    assert tls.cipher_suites == (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_AES_128_GCM_SHA256",
    )
    assert tls.prefer_server_cipher_suites is False
    assert tls.curve_preferences == ("X25519",)


def test_empty_paths_mean_no_tls() -> None:
    assert load_web_config(DATA / "tls_disabled.good.yml").tls is None


def test_users_and_headers() -> None:
    web = load_web_config(DATA / "basic_auth.good.yml")
    assert sorted(web.basic_auth_users) == ["1234", "alice", "bob"]  # Go reads 1234 as "1234"
    assert web.basic_auth_users["bob"].startswith("$2y$")
    headers = load_web_config(DATA / "headers.good.yml").headers
    assert headers["X-Frame-Options"] == "sameorigin"
    assert len(headers) == 5
    assert load_web_config(DATA / "http2_off.good.yml").http2 is False


def test_header_value_with_a_newline_is_folded(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("http_server_config:\n  headers:\n    Content-Security-Policy: >\n"
                    "      default-src 'self';\n      img-src *\n")
    csp = load_web_config(path).headers["Content-Security-Policy"]
    assert csp == "default-src 'self'; img-src *"


# --- errors that need no data file -------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError) as info:
        load_web_config(tmp_path / "nope.yml")
    want = f"web config: cannot read {tmp_path}/nope.yml: No such file or directory"
    assert str(info.value) == want


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError) as info:
        load_web_config(tmp_path)
    assert str(info.value) == f"web config: cannot read {tmp_path}: Is a directory"


def test_error_is_a_value_error_with_the_field() -> None:
    with pytest.raises(ValueError) as info:
        load_web_config(DATA / "min_version_unknown.bad.yml")
    assert isinstance(info.value, WebConfigError)
    assert info.value.field == "tls_server_config.min_version"


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.sampled_from(
        ["TLS13", "X25519", "deny", "nosniff", "NoClientCert", "testonly-selfsigned.crt",
         "TLS_AES_128_GCM_SHA256", "$2b$04$BTPsZTjYr7Fdwifh7yCjs..Ax9nB9IiJQDtAwSZHzo3MT.SxCc9HO"]
    )
)
_KEYS = st.sampled_from(
    ["tls_server_config", "http_server_config", "basic_auth_users", "cert_file", "key_file",
     "client_auth_type", "client_ca_file", "min_version", "max_version", "cipher_suites",
     "curve_preferences", "prefer_server_cipher_suites", "http2", "headers", "X-Frame-Options",
     "alice", "rate_limit"]
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=4))
def test_any_structure_gives_a_config_or_one_line_error(raw: dict[str, object]) -> None:
    """Hostile or confused files never escape as KeyError, TypeError or a traceback."""
    try:
        parse_web_config(yaml.safe_dump(raw), DATA)
    except WebConfigError as e:
        assert "\n" not in str(e) and str(e).startswith("web config: ")


# --- build_ssl_context -------------------------------------------------------------------------


def _tls(**kwargs: object) -> TLSServerConfig:
    return TLSServerConfig(cert_file=CERT, key_file=KEY, **kwargs)  # type: ignore[arg-type]


def test_context_versions() -> None:
    ctx = build_ssl_context(_tls(min_version="TLS13"))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    assert ctx.maximum_version == ssl.TLSVersion.MAXIMUM_SUPPORTED
    ctx = build_ssl_context(_tls(min_version="TLS10", max_version="TLS12"))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2


def test_context_client_auth() -> None:
    assert build_ssl_context(_tls()).verify_mode == ssl.CERT_NONE
    ctx = build_ssl_context(_tls(client_auth_type="VerifyClientCertIfGiven", client_ca_file=CERT))
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert ctx.cert_store_stats()["x509_ca"] == 1
    ctx = build_ssl_context(_tls(client_auth_type="RequireAndVerifyClientCert"))
    assert ctx.verify_mode == ssl.CERT_REQUIRED  # without client_ca_file: system roots, as Go


def test_context_ciphers_and_preference() -> None:
    ctx = build_ssl_context(_tls(cipher_suites=("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                                                "TLS_AES_256_GCM_SHA384")))
    tls12 = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == {"ECDHE-RSA-AES256-GCM-SHA384"}
    assert ctx.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx = build_ssl_context(_tls(prefer_server_cipher_suites=False))
    assert not ctx.options & ssl.OP_CIPHER_SERVER_PREFERENCE


def test_every_go_cipher_suite_maps_to_an_openssl_one() -> None:
    for go_name, openssl_name in CIPHER_SUITES.items():
        ctx = build_ssl_context(_tls(cipher_suites=(go_name,)))
        if openssl_name is not None:
            assert [c["name"] for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3"] == [
                openssl_name
            ], go_name


def test_a_hand_built_tls_config_passes_the_loader_checks() -> None:
    with pytest.raises(WebConfigError, match="unknown cipher suite 'RC4'"):
        _tls(cipher_suites=("RC4",))
    with pytest.raises(WebConfigError, match="unknown curve 'P-256'"):
        _tls(curve_preferences=("P-256",))
    with pytest.raises(WebConfigError, match="unknown TLS version 'TLS9'"):
        _tls(min_version="TLS9")
    with pytest.raises(WebConfigError, match="RequestClientCert is not supported"):
        _tls(client_auth_type="RequestClientCert")


def test_a_load_builds_the_context_it_validated() -> None:
    web = load_web_config(DATA / "everything.good.yml")
    assert web.ssl_context is not None
    assert web.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert load_web_config(DATA / "basic_auth.good.yml").ssl_context is None


# --- deploy samples ----------------------------------------------------------------------------


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    """The deploy samples beside a test certificate named as a kubernetes.io/tls Secret does."""
    for sample in DEPLOY.glob("*.yml"):
        shutil.copy(sample, tmp_path / sample.name)
    shutil.copy(CERT, tmp_path / "tls.crt")
    shutil.copy(KEY, tmp_path / "tls.key")
    return tmp_path


@pytest.mark.parametrize("name", ["web-config.yml", "web-config-basic-auth.yml"])
def test_deploy_sample_loads_and_its_password_is_as_documented(samples: Path, name: str) -> None:
    import bcrypt

    web = load_web_config(samples / name)
    assert (web.tls is not None) == (name == "web-config.yml")
    assert SAMPLE_PASSWORD in (samples / name).read_text()
    (hashed,) = web.basic_auth_users.values()
    assert bcrypt.checkpw(SAMPLE_PASSWORD.encode(), hashed.encode())


@pytest.mark.promtool
@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")
@pytest.mark.parametrize("name", ["web-config.yml", "web-config-basic-auth.yml"])
def test_promtool_accepts_deploy_sample(samples: Path, name: str) -> None:
    result = _promtool(samples / name)
    assert result.returncode == 0, result.stdout + result.stderr
