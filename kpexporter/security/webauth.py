"""Basic auth and security headers from the web config, as pure ASGI middleware.

It behaves like exporter-toolkit v0.8.2's handler, because Prometheus users already rely on it:
401 with ``WWW-Authenticate: Basic`` on any failure, bcrypt run even for unknown users (so
response times do not reveal which users exist), and a cache so that a scrape every 15 s does
not cost a bcrypt check (~60 ms of CPU at cost 10) each time.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``: it must wrap every response, 401s and
streamed bodies included, and needs nothing from a Request object.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass

import anyio
import anyio.to_thread
import bcrypt
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kpexporter.security.webconfig import WebConfig

__all__ = ["AuthState", "WebSecurityMiddleware", "prepare"]

_UNAUTHORIZED_BODY = b"Unauthorized\n"
_MAX_PASSWORD_BYTES = 72  # bcrypt's limit; pyca/bcrypt 5 raises ValueError beyond it
_MAX_DUMMY_COST = 14  # about 1 s per hash
BCRYPT_WORKERS = 4  # threads checking passwords at once (bcrypt releases the GIL)


@dataclass(frozen=True)
class AuthState:
    """One web config, prepared for the request path; swapped whole on reload."""

    users: dict[str, bytes]
    dummy_hash: bytes
    headers: tuple[tuple[bytes, bytes], ...]


def _cost(hashed: bytes) -> int:
    return int(hashed[4:6])  # "$2b$10$…": the loader has checked the shape


def prepare(web: WebConfig) -> AuthState:
    """``web``'s users and headers ready to serve; costs one bcrypt run (the dummy hash)."""
    users = {user: hashed.encode("ascii") for user, hashed in web.basic_auth_users.items()}
    dummy = b""
    if users:
        # The toolkit's fixed dummy hash has cost 10; one with the users' own cost makes an
        # unknown user take as long as a known one whatever cost the operator chose (capped:
        # making the dummy costs one hash, and cost 31 would take days).
        rounds = min(max(_cost(h) for h in users.values()), _MAX_DUMMY_COST)
        dummy = bcrypt.hashpw(secrets.token_urlsafe(32).encode(), bcrypt.gensalt(rounds))
    headers = tuple(
        (name.lower().encode("ascii"), value.encode("utf-8")) for name, value in web.headers.items()
    )
    return AuthState(users=users, dummy_hash=dummy, headers=headers)


def _basic_credentials(scope: Scope) -> tuple[bytes, bytes] | None:
    """User and password from ``Authorization: Basic``, as Go's ``Request.BasicAuth`` reads it."""
    value = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), None)
    if value is None:
        return None
    scheme, _, token = bytes(value).partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user, password


class WebSecurityMiddleware:
    """Basic auth (when the web config has users) and the configured headers on every response.

    ``unauthenticated_paths`` are served without credentials (e.g. ``/healthz`` for a kubelet
    probe, which cannot send a password); it is not part of the web-config schema. Successful
    checks are cached (LRU, ``cache_size`` entries, keyed by a SHA-256 of user, hash and
    password); failures are not, so a flood of wrong passwords cannot evict the scraper's entry.
    bcrypt runs in a worker thread, one check at a time like the toolkit's mutex: an auth flood
    costs one core, and cached scrapes skip the queue.
    """

    def __init__(
        self,
        app: ASGIApp,
        web: WebConfig,
        *,
        unauthenticated_paths: Collection[str] = (),
        cache_size: int = 1024,
    ) -> None:
        self.app = app
        self._open_paths = frozenset(unauthenticated_paths)
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._limiter: anyio.CapacityLimiter | None = None
        self._state = prepare(web)

    @property
    def cache_len(self) -> int:
        """Entries in the success cache (for tests and debugging)."""
        return len(self._cache)

    def update(self, web: WebConfig) -> None:
        """Serve ``web``'s users and headers from the next request on (one bcrypt run: from
        the event loop, prefer ``use(prepare(web))`` with ``prepare`` in a worker thread)."""
        self.use(prepare(web))

    def use(self, state: AuthState) -> None:
        """Serve ``state`` from the next request on; requests in flight keep theirs."""
        self._state = state
        self._cache.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = self._state  # one config per request, even if a reload lands mid-request
        if state.headers and scope["type"] == "http":
            send = _adding_headers(send, state.headers)
        needs_auth = bool(state.users) and scope.get("path") not in self._open_paths
        if needs_auth and not await self._authenticated(scope, state):
            await _deny(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _authenticated(self, scope: Scope, state: AuthState) -> bool:
        credentials = _basic_credentials(scope)
        if credentials is None:
            return False  # nothing to check: the toolkit answers 401 without bcrypt too
        user_bytes, password = credentials
        try:
            hashed = state.users.get(user_bytes.decode("utf-8"))
        except UnicodeDecodeError:
            hashed = None
        known = hashed is not None
        if hashed is None:
            hashed = state.dummy_hash
        key = hashlib.sha256(
            b":".join(binascii.hexlify(part) for part in (user_bytes, hashed, password))
        ).digest()
        if known and key in self._cache:
            self._cache.move_to_end(key)
            return True
        ok = await self._checkpw(password, hashed)
        if ok and known:
            self._cache[key] = None
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return ok and known

    async def _checkpw(self, password: bytes, hashed: bytes) -> bool:
        if len(password) > _MAX_PASSWORD_BYTES:
            return False  # bcrypt cannot have hashed it: a 401, not a 500
        if self._limiter is None:  # created here: it must belong to the running event loop
            self._limiter = anyio.CapacityLimiter(BCRYPT_WORKERS)
        try:
            return await anyio.to_thread.run_sync(
                bcrypt.checkpw, password, hashed, limiter=self._limiter
            )
        except ValueError:  # e.g. a NUL byte; any bcrypt refusal is a failed login
            return False


def _adding_headers(send: Send, headers: tuple[tuple[bytes, bytes], ...]) -> Send:
    """Wrap ``send`` to add the configured headers to the response start.

    A header the app set itself wins, as in the toolkit, where the app runs after the
    configured headers are set and may overwrite them.
    """

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = [(bytes(k), bytes(v)) for k, v in message.get("headers", ())]
            names = {k.lower() for k, _ in present}
            extra = [(k, v) for k, v in headers if k not in names]
            if extra:
                message = {**message, "headers": present + extra}
        await send(message)

    return wrapped


async def _deny(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await receive()  # websocket.connect must be read before the close
        await send({"type": "websocket.close", "code": 1008})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(_UNAUTHORIZED_BODY)).encode("ascii")),
                (b"www-authenticate", b"Basic"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _UNAUTHORIZED_BODY})
