"""One remote-write request: POST a compressed ``WriteRequest``, and what to do with the answer.

The decision is Prometheus's own (``storage/remote/client.go``): a 2xx is delivered; a 5xx,
a 429 or no answer at all (refused, reset, timed out) is worth retrying, after the
receiver's ``Retry-After`` when it gives one; any other status will fail again the same way,
so the batch is given up. :func:`judge` and :func:`retry_after` are pure; the client is the
I/O around them and never raises (but for cancellation).

Secrets come from files, read at each request: a rotated password or token (a Kubernetes
Secret updated in place) is used without a restart.
"""

from __future__ import annotations

import base64
import email.utils
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

from kpexporter import __version__
from kpexporter.config.remote_write import RemoteWrite
from kpexporter.promtext.writerequest import HEADERS

__all__ = ["Answer", "RemoteWriteClient", "check_tls", "judge", "retry_after"]

MAX_RETRY_AFTER = 300.0
"""A Retry-After longer than this is capped: the queue keeps filling meanwhile."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int  # 0: no HTTP answer
    delivered: bool
    retry: bool
    retry_after: float | None  # seconds the receiver asked to wait
    message: str  # one line, for the log


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - now, 0.0), MAX_RETRY_AFTER)


def judge(status: int, retry_after_header: str | None, body: bytes, now: float) -> Answer:
    """What an HTTP answer means for the batch."""
    text = body[:256].decode("utf-8", "replace").strip().replace("\n", " ")
    message = f"HTTP {status}" + (f": {text}" if text else "")
    if 200 <= status < 300:
        return Answer(status, True, False, None, message)
    if status == 429 or status >= 500:
        return Answer(status, False, True, retry_after(retry_after_header, now), message)
    return Answer(status, False, False, None, message)


def _ssl_context(rw: RemoteWrite) -> ssl.SSLContext | bool:
    tls = rw.tls
    if tls.ca_file is None and tls.cert_file is None and not tls.insecure_skip_verify:
        return True
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file is not None and tls.key_file is not None:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def check_tls(rw: RemoteWrite) -> None:
    """Load ``rw``'s certificates once, before serving: a bad file is a ``ValueError`` with
    one line, at start rather than at the first push."""
    try:
        _ssl_context(rw)
    except (OSError, ssl.SSLError) as e:
        raise ValueError(f"remote_write {rw.url}: tls: {e}"[:300]) from None


def _read_secret(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()


class RemoteWriteClient:
    """POSTs to one receiver; one request at a time (the caller's queue keeps the order)."""

    def __init__(self, rw: RemoteWrite) -> None:
        self.rw = rw
        self._client = httpx.AsyncClient(verify=_ssl_context(rw), timeout=rw.timeout,
                                         follow_redirects=False)
        self._headers = {**dict(rw.headers), **HEADERS,
                         "User-Agent": f"kpexporter/{__version__}"}

    def _auth_headers(self) -> dict[str, str]:
        rw = self.rw
        if rw.bearer_token_file is not None:
            return {"Authorization": f"Bearer {_read_secret(rw.bearer_token_file)}"}
        if rw.basic_auth is not None:
            password = ("" if rw.basic_auth.password_file is None
                        else _read_secret(rw.basic_auth.password_file))
            token = base64.b64encode(f"{rw.basic_auth.username}:{password}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
        return {}

    async def post(self, body: bytes, now: float) -> Answer:
        """Send ``body`` (already compressed); never raises but for cancellation."""
        try:
            headers = {**self._headers, **self._auth_headers()}
        except (OSError, UnicodeDecodeError) as e:
            return Answer(0, False, True, None, f"cannot read a credential file: {e}"[:200])
        extensions = ({"sni_hostname": self.rw.tls.server_name}
                      if self.rw.tls.server_name else None)
        try:
            resp = await self._client.post(self.rw.url, content=body, headers=headers,
                                           extensions=extensions)
        except httpx.HTTPError as e:
            return Answer(0, False, True, None, f"{type(e).__name__}: {e}"[:200])
        return judge(resp.status_code, resp.headers.get("Retry-After"), resp.content, now)

    async def aclose(self) -> None:
        await self._client.aclose()
