"""WebSecurityMiddleware on a tiny Starlette app, through httpx's in-process ASGI transport.

bcrypt calls are counted rather than timed: "the cache was hit" is "bcrypt was not called".
Hashes use cost 4 to keep the suite fast; the middleware's behaviour does not depend on cost.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import bcrypt
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from kpexporter.security.webauth import BCRYPT_WORKERS, WebSecurityMiddleware
from kpexporter.security.webconfig import WebConfig

ALICE_HASH = "$2b$04$BTPsZTjYr7Fdwifh7yCjs..Ax9nB9IiJQDtAwSZHzo3MT.SxCc9HO"  # alice-password
BOB_HASH = "$2b$04$1O2AyiOdhepQGXDPIq.9Vud0Gbv1x1bq2Is8x869hXESqOwuv7izC"  # bob-password
ALICE = ("alice", "alice-password")
HEADERS = {"X-Frame-Options": "deny", "X-Content-Type-Options": "nosniff"}
WEB = WebConfig(headers=HEADERS, basic_auth_users={"alice": ALICE_HASH, "bob": BOB_HASH})


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def _own_header(request: Request) -> PlainTextResponse:
    return PlainTextResponse("mine", headers={"X-Frame-Options": "sameorigin"})


async def _stream(request: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"

    return StreamingResponse(chunks())


APP = Starlette(
    routes=[Route("/", _hello), Route("/own", _own_header), Route("/stream", _stream),
            Route("/healthz", _hello)]
)


@pytest.fixture
def bcrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Count bcrypt checks; each entry is the hash checked against."""
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)  # webauth looks it up on every check
    return calls


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def _basic(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _assert_denied(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Basic"
    assert response.text == "Unauthorized\n"
    assert response.headers["x-frame-options"] == "deny"  # headers on 401s too
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_no_credentials(bcrypt_calls: list[bytes]) -> None:
    async with _client(WebSecurityMiddleware(APP, WEB)) as client:
        _assert_denied(await client.get("/"))
    assert bcrypt_calls == []  # nothing to check, as in the toolkit


async def test_wrong_password() -> None:
    async with _client(WebSecurityMiddleware(APP, WEB)) as client:
        _assert_denied(await client.get("/", auth=("alice", "bob-password")))


async def test_unknown_user_still_runs_bcrypt_on_a_dummy_hash(bcrypt_calls: list[bytes]) -> None:
    middleware = WebSecurityMiddleware(APP, WEB)
    async with _client(middleware) as client:
        _assert_denied(await client.get("/", auth=("mallory", "alice-password")))
        # Same cost as the real users, so the answer takes as long as for a known user.
        assert len(bcrypt_calls) == 1 and bcrypt_calls[0][:7] == b"$2b$04$"
        assert bcrypt_calls[0] not in (ALICE_HASH.encode(), BOB_HASH.encode())
        # A known user's hash under an unknown name is no way in either.
        _assert_denied(await client.get("/", auth=("mallory", "alice-password")))
    assert middleware.cache_len == 0


async def test_right_password_is_checked_once_then_cached(bcrypt_calls: list[bytes]) -> None:
    middleware = WebSecurityMiddleware(APP, WEB)
    async with _client(middleware) as client:
        for _ in range(3):
            response = await client.get("/", auth=ALICE)
            assert response.status_code == 200 and response.text == "hello"
            assert response.headers["x-frame-options"] == "deny"
    assert bcrypt_calls == [ALICE_HASH.encode()]
    assert middleware.cache_len == 1


async def test_failures_are_not_cached(bcrypt_calls: list[bytes]) -> None:
    middleware = WebSecurityMiddleware(APP, WEB)
    async with _client(middleware) as client:
        for _ in range(2):
            _assert_denied(await client.get("/", auth=("alice", "nope")))
    assert len(bcrypt_calls) == 2 and middleware.cache_len == 0


async def test_cache_is_bounded() -> None:
    users = {f"user{i}": bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode() for i in range(3)}
    middleware = WebSecurityMiddleware(APP, WebConfig(basic_auth_users=users), cache_size=2)
    async with _client(middleware) as client:
        for user in users:
            assert (await client.get("/", auth=(user, "pw"))).status_code == 200
    assert middleware.cache_len == 2


async def test_password_longer_than_72_bytes(bcrypt_calls: list[bytes]) -> None:
    async with _client(WebSecurityMiddleware(APP, WEB)) as client:
        _assert_denied(await client.get("/", auth=("alice", "x" * 73)))
        _assert_denied(await client.get("/", auth=("alice", "alice-password" + "x" * 100)))
    assert bcrypt_calls == []


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic !!!not-base64!!!",
        "Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ",  # alice:alice-password without its padding
        "Basic " + base64.b64encode(b"alice-without-colon").decode(),
        "Bearer " + base64.b64encode(b"alice:alice-password").decode(),
        "Basic",
        "",
    ],
)
async def test_malformed_authorization(authorization: str, bcrypt_calls: list[bytes]) -> None:
    async with _client(WebSecurityMiddleware(APP, WEB)) as client:
        _assert_denied(await client.get("/", headers={"Authorization": authorization}))
    assert bcrypt_calls == []


async def test_user_name_that_is_not_utf8() -> None:
    async with _client(WebSecurityMiddleware(APP, WEB)) as client:
        _assert_denied(await client.get("/", headers=_basic(b"\xffalice:alice-password")))


async def test_scheme_is_case_insensitive_like_go() -> None:
    token = base64.b64encode(b"alice:alice-password").decode()
    async with _client(WebSecurityMiddleware(APP, WEB)) as client:
        response = await client.get("/", headers={"Authorization": f"bAsIc {token}"})
        assert response.status_code == 200


async def test_password_may_contain_colons() -> None:
    hashed = bcrypt.hashpw(b"a:b:c", bcrypt.gensalt(4)).decode()
    middleware = WebSecurityMiddleware(APP, WebConfig(basic_auth_users={"carol": hashed}))
    async with _client(middleware) as client:
        assert (await client.get("/", auth=("carol", "a:b:c"))).status_code == 200


async def test_app_header_wins_and_streams_get_headers() -> None:
    async with _client(WebSecurityMiddleware(APP, WEB)) as client:
        own = await client.get("/own", auth=ALICE)
        assert own.headers.get_list("x-frame-options") == ["sameorigin"]
        assert own.headers["x-content-type-options"] == "nosniff"
        stream = await client.get("/stream", auth=ALICE)
        assert stream.text == "ab" and stream.headers["x-frame-options"] == "deny"


async def test_headers_only_no_auth() -> None:
    async with _client(WebSecurityMiddleware(APP, WebConfig(headers=HEADERS))) as client:
        response = await client.get("/")
        assert response.status_code == 200 and response.headers["x-frame-options"] == "deny"
        assert (await client.get("/missing")).headers["x-frame-options"] == "deny"


async def test_empty_config_passes_through() -> None:
    async with _client(WebSecurityMiddleware(APP, WebConfig())) as client:
        response = await client.get("/")
        assert response.status_code == 200 and "x-frame-options" not in response.headers


async def test_unauthenticated_paths() -> None:
    middleware = WebSecurityMiddleware(APP, WEB, unauthenticated_paths={"/healthz"})
    async with _client(middleware) as client:
        health = await client.get("/healthz")
        assert health.status_code == 200 and health.headers["x-frame-options"] == "deny"
        _assert_denied(await client.get("/"))


async def test_update_swaps_users_and_clears_the_cache() -> None:
    middleware = WebSecurityMiddleware(APP, WEB)
    async with _client(middleware) as client:
        assert (await client.get("/", auth=ALICE)).status_code == 200
        middleware.update(WebConfig(basic_auth_users={"bob": BOB_HASH}))
        assert middleware.cache_len == 0
        denied = await client.get("/", auth=ALICE)
        assert denied.status_code == 401 and "x-frame-options" not in denied.headers
        assert (await client.get("/", auth=("bob", "bob-password"))).status_code == 200


async def test_bcrypt_checks_run_in_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two checks meet at a barrier: with one check at a time (the old mutex) it breaks."""
    barrier = threading.Barrier(2, timeout=10)
    real = bcrypt.checkpw

    def meeting(password: bytes, hashed: bytes) -> bool:
        barrier.wait()
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", meeting)
    async with _client(WebSecurityMiddleware(APP, WEB)) as client:
        alice, bob = await asyncio.gather(
            client.get("/", auth=ALICE), client.get("/", auth=("bob", "bob-password"))
        )
    assert alice.status_code == bob.status_code == 200
    assert BCRYPT_WORKERS >= 2


async def test_a_cached_login_never_waits_behind_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    """200 wrong passwords hold every bcrypt worker (their checks block until released); the
    cached scrape is answered while all 200 are still waiting."""
    middleware = WebSecurityMiddleware(APP, WEB)
    async with _client(middleware) as client:
        assert (await client.get("/", auth=ALICE)).status_code == 200  # now cached
        release = threading.Event()
        real = bcrypt.checkpw

        def held(password: bytes, hashed: bytes) -> bool:
            release.wait(30)
            return real(password, hashed)

        monkeypatch.setattr(bcrypt, "checkpw", held)
        flood = [asyncio.create_task(client.get("/", auth=("alice", f"guess{i}")))
                 for i in range(200)]
        await asyncio.sleep(0.05)  # let the flood reach the pool and its queue
        cached = await asyncio.wait_for(client.get("/", auth=ALICE), timeout=30)
        assert cached.status_code == 200
        assert not any(task.done() for task in flood)
        release.set()
        assert {r.status_code for r in await asyncio.gather(*flood)} == {401}


async def _run(middleware: WebSecurityMiddleware, scope: Scope,
               incoming: list[Message]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware(scope, receive, send)
    return sent


async def test_lifespan_passes_through() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    await _run(WebSecurityMiddleware(inner, WEB), {"type": "lifespan"}, [])
    assert seen == ["lifespan"]


async def test_websocket_without_credentials_is_closed() -> None:
    called: list[Callable[..., object]] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(inner)

    scope = {"type": "websocket", "path": "/ws", "headers": []}
    sent = await _run(WebSecurityMiddleware(inner, WEB), scope, [{"type": "websocket.connect"}])
    assert sent == [{"type": "websocket.close", "code": 1008}] and called == []
