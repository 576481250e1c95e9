"""The exporter-toolkit ``web-config.yml``: TLS, basic auth and security headers.

Prometheus operators already write this file for node_exporter and friends, so kpexporter reads
the same format instead of inventing flags. We implement the schema of exporter-toolkit v0.8.2,
the version Prometheus 2.42 bundles, so ``promtool check web-config`` is an exact oracle for what
is valid (tests/security/test_webconfig.py runs it on every test file). Where Python's ``ssl``
module cannot do what Go's ``crypto/tls`` does, the file is rejected with a clear message rather
than served with weaker security than it asks for (see ``_check_tls``).

One pass: the parser checks the YAML's shape, ``TLSServerConfig`` checks what the TLS settings
mean (whoever builds one), and ``build_ssl_context`` builds the one ``SSLContext`` a load
yields, so a key that does not match its certificate fails at load, not at the first scrape.
The toolkit re-reads the file per request; kpexporter re-reads it on SIGHUP
(``kpexporter.security.server``). The uvicorn glue lives there too.
"""

from __future__ import annotations

import re
import ssl
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "TLSServerConfig",
    "WebConfig",
    "WebConfigError",
    "build_ssl_context",
    "load_web_config",
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


@dataclass(frozen=True)
class TLSServerConfig:
    """``tls_server_config`` with defaults applied and file paths made absolute.

    Constructing one checks what the settings mean (names, version order, what Python's ssl
    can honour), so a hand-built config and a parsed one pass the same checks, once.
    """

    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str | None = None
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_tls(self)


@dataclass(frozen=True)
class WebConfig:
    """A whole web config; the defaults are what an empty file means (plain HTTP, no auth).

    ``ssl_context`` is the context a load built from ``tls`` (None for a hand-built config:
    the server builds it); it takes no part in equality.
    """

    tls: TLSServerConfig | None = None
    headers: dict[str, str] = field(default_factory=dict)
    http2: bool = True
    basic_auth_users: dict[str, str] = field(default_factory=dict)
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)


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


def _list(section: Mapping[str, Any], key: str, where: str) -> tuple[Any, ...]:
    """A list field (its items are checked by ``TLSServerConfig``)."""
    value = section.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise WebConfigError(f"{where}.{key}", f"must be a list, got {_kind(value)}")
    return tuple(value)


def _parse_tls(raw: object, base: Path) -> TLSServerConfig | None:
    where = "tls_server_config"
    section = _mapping(raw, where, _TLS_FIELDS)
    cert = _string(section, "cert_file", where)
    key = _string(section, "key_file", where)
    auth = _string(section, "client_auth_type", where)
    ca = _string(section, "client_ca_file", where)
    ciphers = _list(section, "cipher_suites", where)
    curves = _list(section, "curve_preferences", where)
    prefer = _bool(section, "prefer_server_cipher_suites", where, True)
    min_version = section.get("min_version")
    max_version = section.get("max_version")
    if not (cert or key or auth or ca):
        # As in the toolkit: no TLS asked for, serve plain HTTP; the other fields still count.
        _check_names(ciphers, curves, min_version, max_version)
        return None
    if not cert:
        raise WebConfigError(f"{where}.cert_file", "missing (TLS needs cert_file and key_file)")
    if not key:
        raise WebConfigError(f"{where}.key_file", "missing (TLS needs cert_file and key_file)")
    return TLSServerConfig(
        cert_file=base / cert,  # an absolute path stays as it is
        key_file=base / key,
        client_auth_type=_CLIENT_AUTH_ALIASES.get(auth, auth),
        client_ca_file=base / ca if ca else None,
        min_version="TLS12" if min_version is None else min_version,
        max_version=max_version,
        cipher_suites=ciphers,
        prefer_server_cipher_suites=prefer,
        curve_preferences=curves,
    )


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
    """Parse web-config YAML; relative paths are resolved against ``base``.

    With TLS, this reads the certificate files and builds the ``SSLContext`` (kept in the
    result): everything a server would trip over later fails here.
    """
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
    ctx = build_ssl_context(tls) if tls is not None else None
    return WebConfig(tls=tls, headers=headers, http2=http2, basic_auth_users=users,
                     ssl_context=ctx)


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


# --- What the TLS settings mean ----------------------------------------------------------------

_TLS = "tls_server_config"


def _check_names(
    ciphers: tuple[Any, ...], curves: tuple[Any, ...], min_version: object, max_version: object
) -> None:
    for key, value in (("min_version", min_version), ("max_version", max_version)):
        if value is not None and (not isinstance(value, str) or value not in TLS_VERSIONS):
            raise WebConfigError(
                f"{_TLS}.{key}", f"unknown TLS version {value!r} (use {', '.join(TLS_VERSIONS)})"
            )
    for key, names, known, what in (
        ("cipher_suites", ciphers, CIPHER_SUITES, "cipher suite"),
        ("curve_preferences", curves, CURVES, "curve"),
    ):
        for i, name in enumerate(names):
            if not isinstance(name, str) or name not in known:
                raise WebConfigError(
                    f"{_TLS}.{key}[{i}]", f"unknown {what} {name!r} (use {', '.join(known)})"
                )


def _check_tls(tls: TLSServerConfig) -> None:
    """Everything about ``tls`` that needs no file, in the order a reader of the file meets it.

    Go features Python's ssl module lacks are refused instead of approximated, because each
    approximation would be weaker than the file asks for: accepting a client certificate without
    verifying it (RequestClientCert, RequireAnyClientCert) and a list of several curves (Python
    3.11 can restrict the key exchange to one group only).
    """
    _check_names(tls.cipher_suites, tls.curve_preferences, tls.min_version, tls.max_version)
    auth = tls.client_auth_type
    if auth not in CLIENT_AUTH_TYPES:
        raise WebConfigError(
            f"{_TLS}.client_auth_type",
            f"unknown value {auth!r} (use {', '.join(CLIENT_AUTH_TYPES)})",
        )
    if tls.max_version and TLS_VERSIONS[tls.max_version] < TLS_VERSIONS[tls.min_version]:
        # Go accepts this and then fails every handshake; say so now instead.
        raise WebConfigError(
            f"{_TLS}.max_version", f"{tls.max_version} is lower than min_version {tls.min_version}"
        )
    if len(tls.curve_preferences) > 1:
        raise WebConfigError(
            f"{_TLS}.curve_preferences",
            f"lists {len(tls.curve_preferences)} curves, but Python's ssl module can restrict "
            "the key exchange to one only: list exactly one, or none for OpenSSL's defaults",
        )
    if auth in ("RequestClientCert", "RequireAnyClientCert"):
        raise WebConfigError(
            f"{_TLS}.client_auth_type",
            f"{auth} is not supported: Python's ssl module cannot accept a client certificate "
            "without verifying it (use VerifyClientCertIfGiven or RequireAndVerifyClientCert "
            "with client_ca_file)",
        )
    if auth == "NoClientCert" and tls.client_ca_file is not None:
        raise WebConfigError(
            f"{_TLS}.client_ca_file",
            "set, but client_auth_type is NoClientCert (use VerifyClientCertIfGiven or "
            "RequireAndVerifyClientCert)",
        )


# --- TLS ---------------------------------------------------------------------------------------

_PRIVATE_KEY_RE = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def _read(path: Path, field_name: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        where = f"{_TLS}.{field_name}"
        raise WebConfigError(where, f"cannot read {path}: {e.strerror or e}") from None


def _load_key_pair(ctx: ssl.SSLContext, tls: TLSServerConfig) -> None:
    """Load cert and key with messages that say what is wrong (OpenSSL says "PEM lib")."""
    cert_pem = _read(tls.cert_file, "cert_file")
    key_pem = _read(tls.key_file, "key_file")
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise WebConfigError(f"{_TLS}.cert_file", f"no PEM certificate in {tls.cert_file}")
    if not _PRIVATE_KEY_RE.search(key_pem):
        raise WebConfigError(f"{_TLS}.key_file", f"no PEM private key in {tls.key_file}")
    if b"ENCRYPTED" in key_pem:
        raise WebConfigError(
            f"{_TLS}.key_file", f"{tls.key_file} is encrypted; encrypted keys are not supported"
        )
    try:
        # A password callback stops OpenSSL from ever prompting on the terminal.
        ctx.load_cert_chain(tls.cert_file, tls.key_file, password=lambda: b"")
    except ssl.SSLError as e:
        if e.reason in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"):
            raise WebConfigError(
                f"{_TLS}.key_file",
                f"the private key in {tls.key_file} does not match the certificate in "
                f"{tls.cert_file}",
            ) from None
        raise WebConfigError(
            f"{_TLS}.cert_file", f"cannot load {tls.cert_file} and {tls.key_file}: {e}"
        ) from None
    except OSError as e:  # the file went away since we read it
        raise WebConfigError(_TLS, f"cannot read {e.filename}: {e.strerror or e}") from None


def build_ssl_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """The server ``SSLContext`` that ``tls`` (already checked) describes, or a ``WebConfigError``
    naming the file that cannot be read or used."""
    if tls.client_ca_file is not None:
        _read(tls.client_ca_file, "client_ca_file")  # a missing CA is named before the key pair
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        # TLS 1.0/1.1 are deprecated; the file asked for them explicitly, so don't warn per start.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = TLS_VERSIONS[tls.min_version]
        ctx.maximum_version = (
            TLS_VERSIONS[tls.max_version] if tls.max_version else ssl.TLSVersion.MAXIMUM_SUPPORTED
        )
    openssl_ciphers = [n for c in tls.cipher_suites if (n := CIPHER_SUITES[c]) is not None]
    if openssl_ciphers:
        ctx.set_ciphers(":".join(openssl_ciphers))
    if tls.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    for name in tls.curve_preferences:  # at most one: TLSServerConfig checked
        ctx.set_ecdh_curve(CURVES[name])

    if tls.client_auth_type == "NoClientCert":
        ctx.verify_mode = ssl.CERT_NONE
    else:  # VerifyClientCertIfGiven or RequireAndVerifyClientCert: the others were refused
        optional = tls.client_auth_type == "VerifyClientCertIfGiven"
        ctx.verify_mode = ssl.CERT_OPTIONAL if optional else ssl.CERT_REQUIRED
        if tls.client_ca_file is not None:
            try:
                ctx.load_verify_locations(cafile=tls.client_ca_file)
            except ssl.SSLError:
                raise WebConfigError(
                    f"{_TLS}.client_ca_file", f"no PEM certificates in {tls.client_ca_file}"
                ) from None
            except OSError as e:
                raise WebConfigError(
                    f"{_TLS}.client_ca_file",
                    f"cannot read {tls.client_ca_file}: {e.strerror or e}",
                ) from None
        else:
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # as Go: the system roots

    _load_key_pair(ctx, tls)
    return ctx
