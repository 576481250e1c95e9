"""kube-proxy's ``:10256/healthz`` body → :class:`HealthzReport` (pure: no I/O, no clock).

Three body generations exist (``research/kube-proxy-upstream.md`` §1):

* ``"1.17"`` (1.17–1.27): ``{"lastUpdated": %q,"currentTime": %q}`` with Go ``Time.String()``.
* ``"1.28"`` (1.28–1.32): the same plus ``, "nodeEligible": %v``.
* ``"1.33"`` (1.33+): compact ``json.Marshal`` output, RFC 3339 times, ``healthy`` and an
  optional per-IP-family ``status`` map.

The hand-written fmt bodies happen to be valid JSON, so all generations go through one strict
JSON reader; the generation is then told by the keys and the time format. Unknown extra keys
are tolerated at every level, so a future kube-proxy that adds a field still parses; wrong
types for the keys we know are errors, because they mean we are not talking to kube-proxy.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from kpexporter.kubeproxy.gotime import KubeTime, TimeParseError, parse_kube_time

__all__ = [
    "MAX_BODY_BYTES",
    "FamilyHealth",
    "Generation",
    "HealthzParseError",
    "HealthzReport",
    "parse_healthz",
    "staleness_seconds",
]

Generation = Literal["1.17", "1.28", "1.33"]

# The fetcher already caps bodies at 1 MiB; a real body is < 400 bytes. Checked again here so the
# parser's cost stays bounded whoever calls it.
MAX_BODY_BYTES = 1 << 20

# v1.IPFamily values. Restricting the map keys keeps arbitrary strings out of metric labels.
_IP_FAMILIES = frozenset({"IPv4", "IPv6"})

_METRICS_PORT_OK = (
    "body is 'ok': this looks like the metrics port's /healthz, not kube-proxy's :10256/healthz"
)


class HealthzParseError(ValueError):
    """The bytes are not a kube-proxy healthz body.

    The message is short and quotes no values from the body, only (escaped, truncated) key names,
    because it ends up in logs and error reports; ``field`` names the offending key path (e.g.
    ``status.IPv4.healthy``) when there is one.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


def staleness_seconds(last_updated: KubeTime | None, current_time: KubeTime) -> float:
    """``current_time − last_updated`` in seconds, clamped ≥ 0; ``inf`` when never synced.

    Clamped because 1.33+ stamps the top-level ``lastUpdated`` with a second ``Now()`` call, a
    few ns after ``currentTime``. Computed on integer nanoseconds so that difference survives.
    Public so per-family staleness uses the same rule with the report's ``current_time``.
    """
    if last_updated is None:
        return math.inf
    return max(0, current_time.unix_ns - last_updated.unix_ns) / 1_000_000_000


@dataclass(frozen=True, slots=True)
class FamilyHealth:
    """One entry of the 1.33+ ``status`` map: that IP family's last successful sync."""

    ip_family: str
    last_updated: KubeTime | None
    healthy: bool


@dataclass(frozen=True, slots=True)
class HealthzReport:
    """What one ``/healthz`` answer says. ``status_code`` is recorded, not judged: a 503 with a
    valid body (unhealthy, or node draining) is a successful parse."""

    status_code: int
    generation: Generation
    last_updated: KubeTime | None
    current_time: KubeTime
    node_eligible: bool | None
    healthy: bool | None
    families: tuple[FamilyHealth, ...]

    @property
    def staleness_seconds(self) -> float:
        """Seconds since the last successful sync per the body; ``inf`` when never synced.

        Before 1.33 this is 0 on every 200 (kube-proxy rewrites ``lastUpdated`` to now).
        """
        return staleness_seconds(self.last_updated, self.current_time)


def parse_healthz(body: bytes, status_code: int) -> HealthzReport:
    """Parse a kube-proxy ``/healthz`` (or ``/livez``) body of any generation.

    Raises :class:`HealthzParseError` (only) for anything that is not such a body.
    """
    if not isinstance(body, bytes | bytearray):
        _fail("body is not bytes")
    if len(body) > MAX_BODY_BYTES:
        _fail(f"body is larger than {MAX_BODY_BYTES} bytes")
    if body.strip() == b"ok":
        _fail(_METRICS_PORT_OK)
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        _fail("body is not valid UTF-8")
    try:
        doc = json.loads(
            text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant
        )
    except RecursionError:
        _fail("body is not valid JSON (nested too deeply)")
    except _DuplicateKeyError as exc:
        _fail(f"body has duplicate key {exc.key[:20]!a}")
    except ValueError:  # JSONDecodeError, NaN/Infinity, int literals beyond int_max_str_digits
        _fail("body is not valid JSON")
    if not isinstance(doc, dict):
        _fail(f"body is a JSON {json_type(doc)}, not an object")
    return _report(doc, status_code)


def _report(doc: dict[str, Any], status_code: int) -> HealthzReport:
    for key in ("lastUpdated", "currentTime"):
        if key not in doc:
            _fail(f"{key} is missing", key)
    last_text = _string(doc, "lastUpdated")
    current_text = _string(doc, "currentTime")
    last_updated = _time(last_text, "lastUpdated")
    current_time = _time(current_text, "currentTime")
    if current_time is None:
        _fail("currentTime is the zero time", "currentTime")
    rfc3339 = _is_rfc3339(current_text)
    if _is_rfc3339(last_text) != rfc3339:
        _fail("lastUpdated and currentTime use different time formats", "lastUpdated")

    node_eligible = _optional_bool(doc, "nodeEligible")
    healthy = _optional_bool(doc, "healthy")
    families = _families(doc)

    generation: Generation
    if rfc3339 or "healthy" in doc or "status" in doc:
        generation = "1.33"
        if healthy is None:  # Go's json.Marshal always writes it: no omitempty on a bool
            _fail("healthy is missing (required in the 1.33+ JSON body)", "healthy")
    elif node_eligible is not None:
        generation = "1.28"
    else:
        generation = "1.17"
    return HealthzReport(
        status_code=status_code,
        generation=generation,
        last_updated=last_updated,
        current_time=current_time,
        node_eligible=node_eligible,
        healthy=healthy,
        families=families,
    )


def _families(doc: dict[str, Any]) -> tuple[FamilyHealth, ...]:
    """The 1.33+ ``status`` map, sorted by family. Absent before the first sync (omitempty)."""
    if "status" not in doc:
        return ()
    status = doc["status"]
    if not isinstance(status, dict):
        _fail(f"status must be an object, got {json_type(status)}", "status")
    families = []
    for family in sorted(status):
        if family not in _IP_FAMILIES:
            _fail(f"status has an unknown IP family {family[:20]!a}", "status")
        entry = status[family]
        where = f"status.{family}"
        if not isinstance(entry, dict):
            _fail(f"{where} must be an object, got {json_type(entry)}", where)
        if "lastUpdated" not in entry:
            _fail(f"{where}.lastUpdated is missing", f"{where}.lastUpdated")
        healthy = _optional_bool(entry, "healthy", where)
        if healthy is None:
            _fail(f"{where}.healthy is missing", f"{where}.healthy")
        last_updated = _time(_string(entry, "lastUpdated", where), f"{where}.lastUpdated")
        families.append(FamilyHealth(ip_family=family, last_updated=last_updated, healthy=healthy))
    return tuple(families)


def _string(obj: dict[str, Any], key: str, where: str = "") -> str:
    value = obj[key]
    if not isinstance(value, str):
        name = f"{where}.{key}" if where else key
        _fail(f"{name} must be a string, got {json_type(value)}", name)
    return value


def _optional_bool(obj: dict[str, Any], key: str, where: str = "") -> bool | None:
    """JSON ``true``/``false`` only, never ``0``/``1`` or ``null``: Go writes a bool, and since
    Python's ``True == 1`` a loose check (``in (True, False)``) would let numbers through."""
    if key not in obj:
        return None
    value = obj[key]
    if type(value) is not bool:
        name = f"{where}.{key}" if where else key
        _fail(f"{name} must be true or false, got {json_type(value)}", name)
    return value


def _time(text: str, name: str) -> KubeTime | None:
    try:
        return parse_kube_time(text)
    except TimeParseError as exc:
        _fail(f"{name}: {exc.reason}", name)


def _is_rfc3339(text: str) -> bool:
    """Only meaningful for text that :func:`parse_kube_time` accepted."""
    return len(text) > 10 and text[10] == "T"


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type (what error messages and shape checks say)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Reject duplicate keys: Python keeps the last, other readers the first, so a body with
    both is ambiguous, and kube-proxy never writes one."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _reject_constant(name: str) -> NoReturn:
    """``NaN``/``Infinity`` are Python extensions, not JSON; Go never writes them."""
    raise ValueError(f"{name} is not JSON")


def _fail(message: str, field: str | None = None) -> NoReturn:
    raise HealthzParseError(message, field)
