"""The exporter-toolkit ``web-config.yml``: TLS, basic auth and security headers.

Prometheus operators already write this file for node_exporter and friends, so kpexporter reads
the same format instead of inventing flags. We implement the schema of exporter-toolkit v0.8.2,
the version Prometheus 2.42 bundles, so ``promtool check web-config`` is an exact oracle for what
is valid (tests/test_webconfig.py runs it on every test file). Where Python's ``ssl`` module
cannot do what Go's ``crypto/tls`` does, the file is rejected with a clear message rather than
served with weaker security than it asks for (see ``build_ssl_context``).

Unlike the toolkit, which re-reads the file on every request, the file is read once at start:
uvicorn binds its ``SSLContext`` at start-up. ``WebSecurityMiddleware.reload`` re-reads users and
headers on demand (e.g. on SIGHUP); TLS changes need a restart.
"""

from __future__ import annotations

import re
import ssl
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
import yaml

if TYPE_CHECKING:
    from starlette.types import ASGIApp

__all__ = [
    "TLSServerConfig",
    "WebConfig",
    "WebConfigError",
    "build_ssl_context",
    "load_web_config",
    "make_uvicorn_config",
    "parse_web_config",
]


class WebConfigError(ValueError):
    """An invalid web config; ``str()`` is one line naming the field, fit for a CLI error."""

    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        # Collapse newlines from wrapped library messages: the CLI prints exactly one line.
        self.message = " ".join(message.split())
        prefix = f"web config: {field}: " if field else "web config: "
        super().__init__(prefix + self.message)


@dataclass(frozen=True)
class TLSServerConfig:
    """``tls_server_config`` with defaults applied and file paths made absolute."""

    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str | None = None
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebConfig:
    """A whole web config; the defaults are what an empty file means (plain HTTP, no auth)."""

    tls: TLSServerConfig | None = None
    headers: dict[str, str] = field(default_factory=dict)
    http2: bool = True
    basic_auth_users: dict[str, str] = field(default_factory=dict)


# --- The v0.8.2 schema -------------------------------------------------------------------------

_TOP_FIELDS = ("tls_server_config", "http_server_config", "basic_auth_users")
_TLS_FIELDS = (
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
)
_HTTP_FIELDS = ("http2", "headers")
# Fields of later exporter-toolkit releases: named in the error so users know why they fail.
_NEWER_FIELDS = frozenset(
    {"rate_limit", "cert", "key", "client_ca", "client_allowed_sans", "auth_excluded_paths"}
)

TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
# Go's names, and the toolkit's backwards-compatible alias.
_CLIENT_AUTH_ALIASES = {"": "NoClientCert", "RequireClientCert": "RequireAnyClientCert"}

# Go's tls.CipherSuites() (what the toolkit accepts) → OpenSSL names. TLS 1.3 suites map to
# None: neither Go nor Python's ssl lets a server choose them, so they are accepted and ignored.
CIPHER_SUITES: dict[str, str | None] = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}

CURVES: dict[str, str] = {
    "CurveP256": "prime256v1",
    "CurveP384": "secp384r1",
    "CurveP521": "secp521r1",
    "X25519": "X25519",
}

# exporter-toolkit v0.8.2 web/handler.go: header → allowed values (empty: any value).
ALLOWED_HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}

# What pyca/bcrypt can verify: $2a$/$2b$/$2y$, two-digit cost, 22 salt + 31 hash characters.
_BCRYPT_RE = re.compile(r"\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}")


# --- Loading -----------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, as Go's yaml.UnmarshalStrict does."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key: let the constructor report it
            break
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _kind(value: object) -> str:
    """Name a YAML value's type the way a person reading the file would."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _mapping(value: object, where: str | None, allowed: tuple[str, ...]) -> dict[str, Any]:
    """A section as a dict (null means empty), with unknown keys rejected."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        if where is None:
            raise WebConfigError(None, f"the top level must be a mapping, got {_kind(value)}")
        raise WebConfigError(where, f"must be a mapping, got {_kind(value)}")
    for key in value:
        name = f"{where}.{key}" if where else str(key)
        if key in _NEWER_FIELDS:
            raise WebConfigError(
                name,
                "not supported (a newer exporter-toolkit field; kpexporter implements the "
                "v0.8.2 schema that Prometheus 2.42 validates)",
            )
        if key not in allowed:
            raise WebConfigError(name, f"unknown field (allowed: {', '.join(allowed)})")
    return value


def _string(section: Mapping[str, Any], key: str, where: str) -> str:
    """A string field; absent and null read as "" (unset), like Go's zero value."""
    value = section.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise WebConfigError(f"{where}.{key}", f"must be a string, got {_kind(value)}")
    return value


def _bool(section: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = section.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise WebConfigError(f"{where}.{key}", f"must be true or false, got {_kind(value)}")
    return value


def _names(
    section: Mapping[str, Any], key: str, where: str, known: Mapping[str, object], what: str
) -> tuple[str, ...]:
    """A list of names from a fixed vocabulary (cipher suites, curves)."""
    value = section.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise WebConfigError(f"{where}.{key}", f"must be a list, got {_kind(value)}")
    for i, name in enumerate(value):
        if not isinstance(name, str) or name not in known:
            raise WebConfigError(
                f"{where}.{key}[{i}]", f"unknown {what} {name!r} (use {', '.join(known)})"
            )
    return tuple(value)


def _version(section: Mapping[str, Any], key: str, where: str) -> str | None:
    if section.get(key) is None:
        return None
    value = section[key]
    if not isinstance(value, str) or value not in TLS_VERSIONS:
        raise WebConfigError(
            f"{where}.{key}", f"unknown TLS version {value!r} (use {', '.join(TLS_VERSIONS)})"
        )
    return value


def _readable(path: Path, field_name: str) -> None:
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as e:
        raise WebConfigError(field_name, f"cannot read {path}: {e.strerror or e}") from None


def _parse_tls(raw: object, base: Path) -> TLSServerConfig | None:
    where = "tls_server_config"
    section = _mapping(raw, where, _TLS_FIELDS)
    cert = _string(section, "cert_file", where)
    key = _string(section, "key_file", where)
    auth = _string(section, "client_auth_type", where)
    ca = _string(section, "client_ca_file", where)
    min_version = _version(section, "min_version", where) or "TLS12"
    max_version = _version(section, "max_version", where)
    ciphers = _names(section, "cipher_suites", where, CIPHER_SUITES, "cipher suite")
    curves = _names(section, "curve_preferences", where, CURVES, "curve")
    prefer = _bool(section, "prefer_server_cipher_suites", where, True)
    if not (cert or key or auth or ca):
        return None  # as in the toolkit: no TLS asked for, serve plain HTTP
    if not cert:
        raise WebConfigError(f"{where}.cert_file", "missing (TLS needs cert_file and key_file)")
    if not key:
        raise WebConfigError(f"{where}.key_file", "missing (TLS needs cert_file and key_file)")
    auth = _CLIENT_AUTH_ALIASES.get(auth, auth)
    if auth not in CLIENT_AUTH_TYPES:
        raise WebConfigError(
            f"{where}.client_auth_type",
            f"unknown value {auth!r} (use {', '.join(CLIENT_AUTH_TYPES)})",
        )
    tls = TLSServerConfig(
        cert_file=base / cert,  # an absolute path stays as it is
        key_file=base / key,
        client_auth_type=auth,
        client_ca_file=base / ca if ca else None,
        min_version=min_version,
        max_version=max_version,
        cipher_suites=ciphers,
        prefer_server_cipher_suites=prefer,
        curve_preferences=curves,
    )
    _readable(tls.cert_file, f"{where}.cert_file")
    _readable(tls.key_file, f"{where}.key_file")
    if tls.client_ca_file is not None:
        _readable(tls.client_ca_file, f"{where}.client_ca_file")
    build_ssl_context(tls)  # loads the key pair: a bad certificate fails now, not at first scrape
    return tls


def _parse_http(raw: object) -> tuple[dict[str, str], bool]:
    where = "http_server_config"
    section = _mapping(raw, where, _HTTP_FIELDS)
    http2 = _bool(section, "http2", where, True)
    raw_headers = section.get("headers")
    if raw_headers is None:
        return {}, http2
    if not isinstance(raw_headers, dict):
        raise WebConfigError(f"{where}.headers", f"must be a mapping, got {_kind(raw_headers)}")
    headers: dict[str, str] = {}
    for name, value in raw_headers.items():
        name_field = f"{where}.headers.{name}"
        if name not in ALLOWED_HEADERS:
            raise WebConfigError(
                name_field, f"header can not be configured (allowed: {', '.join(ALLOWED_HEADERS)})"
            )
        if value is None:
            value = ""  # Go reads a null as the empty string
        if not isinstance(value, str):
            raise WebConfigError(name_field, f"must be a string, got {_kind(value)}")
        allowed = ALLOWED_HEADERS[name]
        if allowed and value not in allowed:
            raise WebConfigError(
                name_field, f"invalid value {value!r} (use {', '.join(allowed)})"
            )
        # As Go's net/http writes it: line breaks (a folded YAML block) become spaces.
        value = value.replace("\r", " ").replace("\n", " ").strip()
        if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
            raise WebConfigError(name_field, "contains a control character")
        headers[name] = value
    return headers, http2


def _check_bcrypt(hashed: str, field_name: str) -> None:
    """Go's bcrypt.Cost checks (same words, so promtool users recognise them), then pyca's."""
    if len(hashed) < 59:
        raise WebConfigError(field_name, "hashedSecret too short to be a bcrypted password")
    if hashed[0] != "$":
        raise WebConfigError(
            field_name,
            f"bcrypt hashes must start with '$', but hashedSecret started with '{hashed[0]}'",
        )
    if hashed[1] > "2":
        raise WebConfigError(
            field_name,
            f"bcrypt algorithm version '{hashed[1]}' requested is newer than current version '2'",
        )
    cost_at = 3 if hashed[2] == "$" else 4
    cost_text = hashed[cost_at : cost_at + 2]
    if cost_text.isdigit() and not 4 <= int(cost_text) <= 31:
        raise WebConfigError(field_name, f"cost {int(cost_text)} is outside allowed range (4,31)")
    # Stricter than Go, which accepts any 60 bytes after a good prefix: a hash that bcrypt
    # cannot parse would turn every login into an error, so reject it here.
    if not _BCRYPT_RE.fullmatch(hashed):
        raise WebConfigError(
            field_name,
            "not a valid bcrypt hash (want $2a$, $2b$ or $2y$, a two-digit cost and "
            "53 characters of salt and hash)",
        )


def _parse_users(raw: object) -> dict[str, str]:
    where = "basic_auth_users"
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise WebConfigError(where, f"must be a mapping of user to bcrypt hash, got {_kind(raw)}")
    users: dict[str, str] = {}
    for user, hashed in raw.items():
        if isinstance(user, bool) or not isinstance(user, str | int):
            raise WebConfigError(
                f"{where}.{user}", f"user name must be a string, got {_kind(user)}"
            )
        name = str(user)
        if hashed is None:
            hashed = ""
        if not isinstance(hashed, str):
            raise WebConfigError(f"{where}.{name}", f"must be a bcrypt hash, got {_kind(hashed)}")
        _check_bcrypt(hashed, f"{where}.{name}")
        users[name] = hashed
    return users


def parse_web_config(text: str | bytes, base: Path) -> WebConfig:
    """Parse web-config YAML; relative paths are resolved against ``base``."""
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise WebConfigError(None, f"invalid YAML{where}: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise WebConfigError(None, f"invalid YAML: {e}") from None
    if raw is None:
        return WebConfig()
    top = _mapping(raw, None, _TOP_FIELDS)
    tls = _parse_tls(top.get("tls_server_config"), base)
    headers, http2 = _parse_http(top.get("http_server_config"))
    users = _parse_users(top.get("basic_auth_users"))
    return WebConfig(tls=tls, headers=headers, http2=http2, basic_auth_users=users)


def load_web_config(path: Path) -> WebConfig:
    """Read and strictly validate a web config file, certificates included.

    Everything a server would trip over later (unknown keys, unreadable files, a key that does
    not match its certificate, a malformed hash) fails here, with one line naming the field.
    """
    try:
        text = Path(path).read_bytes()
    except OSError as e:
        raise WebConfigError(None, f"cannot read {path}: {e.strerror or e}") from None
    return parse_web_config(text, Path(path).parent)


# --- TLS ---------------------------------------------------------------------------------------

_PRIVATE_KEY_RE = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def _load_key_pair(ctx: ssl.SSLContext, tls: TLSServerConfig) -> None:
    """Load cert and key with messages that say what is wrong (OpenSSL says "PEM lib")."""
    where = "tls_server_config"
    try:
        cert_pem = tls.cert_file.read_bytes()
        key_pem = tls.key_file.read_bytes()
    except OSError as e:
        raise WebConfigError(where, f"cannot read {e.filename}: {e.strerror or e}") from None
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise WebConfigError(f"{where}.cert_file", f"no PEM certificate in {tls.cert_file}")
    if not _PRIVATE_KEY_RE.search(key_pem):
        raise WebConfigError(f"{where}.key_file", f"no PEM private key in {tls.key_file}")
    if b"ENCRYPTED" in key_pem:
        raise WebConfigError(
            f"{where}.key_file", f"{tls.key_file} is encrypted; encrypted keys are not supported"
        )
    try:
        # A password callback stops OpenSSL from ever prompting on the terminal.
        ctx.load_cert_chain(tls.cert_file, tls.key_file, password=lambda: b"")
    except ssl.SSLError as e:
        if e.reason in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"):
            raise WebConfigError(
                f"{where}.key_file",
                f"the private key in {tls.key_file} does not match the certificate in "
                f"{tls.cert_file}",
            ) from None
        raise WebConfigError(
            f"{where}.cert_file", f"cannot load {tls.cert_file} and {tls.key_file}: {e}"
        ) from None


def build_ssl_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """A server ``SSLContext`` that does what ``tls`` says, or a ``WebConfigError``.

    Go features Python's ssl module lacks are refused instead of approximated, because each
    approximation would be weaker than the file asks for: accepting a client certificate without
    verifying it (RequestClientCert, RequireAnyClientCert) and a list of several curves (Python
    3.11 can restrict the key exchange to one group only).
    """
    where = "tls_server_config"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)

    if tls.min_version not in TLS_VERSIONS:
        raise WebConfigError(f"{where}.min_version", f"unknown TLS version {tls.min_version!r}")
    if tls.max_version is not None and tls.max_version not in TLS_VERSIONS:
        raise WebConfigError(f"{where}.max_version", f"unknown TLS version {tls.max_version!r}")
    minimum = TLS_VERSIONS[tls.min_version]
    maximum = TLS_VERSIONS[tls.max_version] if tls.max_version else ssl.TLSVersion.MAXIMUM_SUPPORTED
    if tls.max_version and maximum < minimum:
        # Go accepts this and then fails every handshake; say so now instead.
        raise WebConfigError(
            f"{where}.max_version", f"{tls.max_version} is lower than min_version {tls.min_version}"
        )
    with warnings.catch_warnings():
        # TLS 1.0/1.1 are deprecated; the file asked for them explicitly, so don't warn per start.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = minimum
        ctx.maximum_version = maximum

    openssl_ciphers = []
    for i, name in enumerate(tls.cipher_suites):
        if name not in CIPHER_SUITES:
            raise WebConfigError(f"{where}.cipher_suites[{i}]", f"unknown cipher suite {name!r}")
        if (openssl_name := CIPHER_SUITES[name]) is not None:
            openssl_ciphers.append(openssl_name)
    if openssl_ciphers:
        ctx.set_ciphers(":".join(openssl_ciphers))
    if tls.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE

    if len(tls.curve_preferences) > 1:
        raise WebConfigError(
            f"{where}.curve_preferences",
            f"lists {len(tls.curve_preferences)} curves, but Python's ssl module can restrict "
            "the key exchange to one only: list exactly one, or none for OpenSSL's defaults",
        )
    for i, name in enumerate(tls.curve_preferences):
        if name not in CURVES:
            raise WebConfigError(f"{where}.curve_preferences[{i}]", f"unknown curve {name!r}")
        ctx.set_ecdh_curve(CURVES[name])

    auth = tls.client_auth_type
    if auth in ("RequestClientCert", "RequireAnyClientCert"):
        raise WebConfigError(
            f"{where}.client_auth_type",
            f"{auth} is not supported: Python's ssl module cannot accept a client certificate "
            "without verifying it (use VerifyClientCertIfGiven or RequireAndVerifyClientCert "
            "with client_ca_file)",
        )
    if auth == "NoClientCert":
        if tls.client_ca_file is not None:
            raise WebConfigError(
                f"{where}.client_ca_file",
                "set, but client_auth_type is NoClientCert (use VerifyClientCertIfGiven or "
                "RequireAndVerifyClientCert)",
            )
        ctx.verify_mode = ssl.CERT_NONE
    elif auth in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert"):
        ctx.verify_mode = (
            ssl.CERT_OPTIONAL if auth == "VerifyClientCertIfGiven" else ssl.CERT_REQUIRED
        )
        if tls.client_ca_file is not None:
            try:
                ctx.load_verify_locations(cafile=tls.client_ca_file)
            except ssl.SSLError:
                raise WebConfigError(
                    f"{where}.client_ca_file", f"no PEM certificates in {tls.client_ca_file}"
                ) from None
            except OSError as e:
                raise WebConfigError(
                    f"{where}.client_ca_file",
                    f"cannot read {tls.client_ca_file}: {e.strerror or e}",
                ) from None
        else:
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # as Go: the system roots
    else:
        raise WebConfigError(
            f"{where}.client_auth_type",
            f"unknown value {auth!r} (use {', '.join(CLIENT_AUTH_TYPES)})",
        )

    _load_key_pair(ctx, tls)
    return ctx


# --- uvicorn -----------------------------------------------------------------------------------


class WebUvicornConfig(uvicorn.Config):
    """A ``uvicorn.Config`` that serves with our ``SSLContext``.

    uvicorn builds its own context from file names (encode/uvicorn#806), which cannot express
    min/max version, client-CA policy or curves. ``load()`` runs once at server start-up; we let
    uvicorn do its work (``ssl_certfile`` makes it log https) and then swap in our context.
    This uses only ``Config.ssl``, which uvicorn's server reads, so it works on every uvicorn
    the project allows (0.29+), not just those with ``ssl_context_factory``.
    """

    def __init__(self, app: ASGIApp, *, tls: TLSServerConfig | None, **kwargs: Any) -> None:
        self.web_tls = tls
        if tls is not None:
            clash = sorted(k for k in kwargs if k.startswith("ssl_"))
            if clash:
                raise TypeError(f"TLS comes from the web config; do not pass {', '.join(clash)}")
            kwargs["ssl_certfile"] = str(tls.cert_file)
            kwargs["ssl_keyfile"] = str(tls.key_file)
        super().__init__(app, **kwargs)

    def load(self) -> None:
        # Ours first: it refuses an encrypted key, on which uvicorn's would prompt on the tty.
        ctx = build_ssl_context(self.web_tls) if self.web_tls is not None else None
        super().load()
        if ctx is not None:
            alpn: list[str] | None = getattr(self.http_protocol_class, "alpn_protocols", None)
            if alpn:
                ctx.set_alpn_protocols(alpn)
            self.ssl = ctx


def make_uvicorn_config(
    app: ASGIApp, host: str, port: int, web: WebConfig | None, **kwargs: Any
) -> WebUvicornConfig:
    """A uvicorn config that applies the whole web config: TLS, basic auth and headers.

    Auth and headers come from wrapping ``app`` in ``WebSecurityMiddleware`` (skipped when
    ``app`` already is one, e.g. built with ``unauthenticated_paths``), so a web config with
    users can never be served without them. With a web config the middleware is ``config.app``,
    for ``reload()`` (users and headers; TLS changes need a restart). ``http2`` is accepted
    but has no effect: uvicorn serves HTTP/1.1 here.
    """
    from kpexporter.security.webauth import WebSecurityMiddleware  # webauth imports this module

    if web is None:
        return WebUvicornConfig(app, tls=None, host=host, port=port, **kwargs)
    if not isinstance(app, WebSecurityMiddleware):
        app = WebSecurityMiddleware(app, web)
    return WebUvicornConfig(app, tls=web.tls, host=host, port=port, **kwargs)
