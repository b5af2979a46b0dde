# SPDX-License-Identifier: Apache-2.0
"""The HTTP application over RSGI and ASGI: routing, body intake, ProblemDetails, metrics.

No web framework: DESIGN 4 measured frameworks as the ceiling of the hot paths. Paths follow
`{apiRoot}/<apiName>/v1/...` (TS 29.501 4.4.1); an unknown version of a known API is 400
INVALID_API, an unknown path 404, a known path with another method 405.

Admission (ADR 0015), before the body is read: the bearer token of a protected API (scope =
apiName), the caller's rate limit (429 TOO_MANY_REQUESTS) and the cap on requests in flight
(429 NF_CONGESTION_RISK), both with Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from msgin5g.api import problems, rsgi
from msgin5g.api.http import HttpError, RefusedUnread, Request, Response, read_body
from msgin5g.observability import Metrics, Series
from msgin5g.security.principal import Principal, scope_of
from msgin5g.security.ratelimit import RateLimiter
from msgin5g.security.tokens import TokenValidator, insufficient_scope, missing_token

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One API operation: `name` labels metrics; `json_body` enforces application/json."""

    method: str
    path: str
    name: str
    handler: Handler
    json_body: bool = False


KNOWN_APIS = frozenset(
    {
        "msgs-asregistration",
        "msgs-msgdelivery",
        "msgs-topiclistevent",
        "msgg-l3gdelivery",
        "msgg-n3gdelivery",
        "msgg-bgdelivery",
    }
)


class Router:
    """Static paths by dict lookup; paths ending in one `{param}` by prefix."""

    def __init__(self, operations: list[Operation]) -> None:
        self._static: dict[str, dict[str, Operation]] = {}
        self._param: list[tuple[str, str, dict[str, Operation]]] = []
        for op in operations:
            if "{" in op.path:
                prefix, _, rest = op.path.partition("{")
                name = rest.rstrip("}")
                for p, n, methods in self._param:
                    if p == prefix and n == name:
                        methods[op.method] = op
                        break
                else:
                    self._param.append((prefix, name, {op.method: op}))
            else:
                self._static.setdefault(op.path, {})[op.method] = op

    def match(self, path: str) -> tuple[dict[str, Operation], dict[str, str]] | None:
        methods = self._static.get(path)
        if methods is not None:
            return methods, {}
        for prefix, name, methods in self._param:
            if path.startswith(prefix):
                value = path[len(prefix) :]
                if value and "/" not in value:
                    return methods, {name: value}
        return None


class HttpApp:
    """The HTTP app serving every configured operation, over RSGI or ASGI 3."""

    def __init__(
        self,
        operations: list[Operation],
        metrics: Metrics,
        *,
        max_body: int = 1_048_576,
        validator: TokenValidator | None = None,
        limiter: RateLimiter | None = None,
        max_in_flight: int = 0,
    ) -> None:
        self._router = Router(operations)
        self._metrics = metrics
        self._max_body = max_body
        self._series: dict[tuple[str, int], Series] = {}
        self._validator = validator
        self._limiter = limiter
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._scopes = {op.path: scope_of(op.path) for op in operations}
        self._limited = {
            op.path
            for op in operations
            if self._scopes[op.path] is not None or op.path.startswith("/oauth2/")
        }

    def protect(self, validator: TokenValidator, limiter: RateLimiter | None = None) -> None:
        """Require bearer tokens from now on (a gateway's msgg API, set up by its CLI)."""
        self._validator = validator
        if limiter is not None:
            self._limiter = limiter

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        """ASGI 3 (in-process tests, other ASGI servers)."""
        kind = scope["type"]
        if kind == "http":
            response = await self._respond(
                scope["method"],
                scope["path"],
                dict(scope["headers"]),
                receive,
                _asgi,
                scope.get("scheme", "http"),
                scope.get("server"),
                scope.get("client"),
            )
            headers_out = list(response.headers)
            if response.content_type is not None and response.body:
                headers_out.append((b"content-type", response.content_type))
            headers_out.append((b"content-length", str(len(response.body)).encode()))
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers_out}
            )
            await send({"type": "http.response.body", "body": response.body})
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        """RSGI: granian's native interface, what `msgin5g server` serves (ADR 0021)."""
        response = await self._respond(
            scope.method,
            scope.path,
            rsgi.RsgiHeaders(scope.headers, scope.authority),
            proto,
            _rsgi,
            scope.scheme,
            scope.server,
            scope.client,
        )
        rsgi.send(proto, response)

    async def _respond(
        self,
        method: str,
        path: str,
        headers: Mapping[bytes, bytes],
        source: Any,
        body_io: _BodyIO,
        scheme: str,
        server: tuple[str, int] | str | None,
        client: tuple[str, int] | str | None,
    ) -> Response:
        """Route, admit, read the body and run the handler; every failure is a ProblemDetails."""
        name = "unknown"
        try:
            found = self._router.match(path)
            if found is None:
                raise _not_found(path)
            methods, params = found
            op = methods.get(method)
            if op is None:
                allow = ", ".join(sorted(methods)).encode()
                raise HttpError(
                    405,
                    f"{method} is not allowed on {path}",
                    cause="METHOD_NOT_ALLOWED",
                    headers=[(b"allow", allow)],
                )
            name = op.name
            principal = None
            limited = op.path in self._limited
            has_body = method in ("POST", "PUT", "PATCH")
            if limited:
                try:
                    if self._validator is not None or self._limiter is not None:
                        principal = await self._admit(client, headers, self._scopes[op.path])
                    elif self._max_in_flight and self._in_flight >= self._max_in_flight:
                        raise _saturated()
                except HttpError:
                    if has_body:
                        await body_io.discard(source, headers, self._max_body)
                    raise
                self._in_flight += 1
            try:
                body = b""
                if has_body:
                    drain = _DRAIN_LIMIT * self._max_body
                    try:
                        body = await body_io.read(
                            source, headers, self._max_body, needs_json=op.json_body, drain=drain
                        )
                    except RefusedUnread:  # 411, 413, 415: let the client finish its upload
                        await body_io.discard(source, headers, drain)
                        raise
                request = Request(
                    method=method,
                    path=path,
                    headers=headers,
                    body=body,
                    scheme=scheme,
                    server=server,
                    params=params,
                    principal=principal,
                )
                response = await op.handler(request)
            finally:
                if limited:
                    self._in_flight -= 1
        except Exception as exc:
            response = problems.from_exception(exc)
        key = (name, response.status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = self._metrics.counter(
                "msgin5g_http_requests_total", operation=name, status=str(response.status)
            )
        series.value += 1
        return response

    async def _admit(
        self,
        client: tuple[str, int] | str | None,
        headers: Mapping[bytes, bytes],
        api: str | None,
    ) -> Principal | None:
        """Authenticate (when on and `api` is protected), then apply the limits; raises."""
        principal = None
        if self._validator is not None and api is not None:
            authorization = headers.get(b"authorization", b"")
            if not authorization.startswith(b"Bearer ") and authorization[:7].lower() != b"bearer ":
                raise missing_token()
            token = authorization[7:]
            principal = self._validator.cached(token)
            if principal is None:
                # Verifying costs a signature check: it counts against the caller's address.
                if self._limiter is not None:
                    self._check_rate(_remote(client))
                principal = await self._validator.verify(token)
            if api not in principal.scopes:
                raise insufficient_scope(api)
        if self._limiter is not None:
            self._check_rate(principal.client_id if principal is not None else _remote(client))
        if self._max_in_flight and self._in_flight >= self._max_in_flight:
            raise _saturated()
        return principal

    def _check_rate(self, key: str) -> None:
        assert self._limiter is not None
        wait = self._limiter.take(key)
        if wait:
            raise HttpError(
                429,
                "request rate limit exceeded",
                cause="TOO_MANY_REQUESTS",
                headers=[(b"retry-after", str(wait).encode())],
            )


_DRAIN_LIMIT = 4
"""A refused body is read and dropped up to this many times the body limit, so that an HTTP/2
client still uploading sees the refusal instead of a reset stream; beyond that it is reset."""


class _BodyIO(Protocol):
    """How one interface reads or discards a request body (ASGI receive, RSGI proto)."""

    async def read(
        self,
        source: Any,
        headers: Mapping[bytes, bytes],
        limit: int,
        *,
        needs_json: bool,
        drain: int = 0,
    ) -> bytes: ...

    async def discard(self, source: Any, headers: Mapping[bytes, bytes], limit: int) -> None: ...


class _AsgiBody:
    read = staticmethod(read_body)

    @staticmethod
    async def discard(receive: Any, _headers: Mapping[bytes, bytes], limit: int) -> None:
        """Take a refused request's body (up to `limit`, unparsed) before answering: an HTTP/2
        answer that overtakes the upload makes the server reset the stream, which clients such
        as curl report as an error instead of the refusal."""
        taken = 0
        while taken <= limit:
            message = await receive()
            if message["type"] != "http.request":
                return
            taken += len(message.get("body", b""))
            if not message.get("more_body", False):
                return


class _RsgiBody:
    read = staticmethod(rsgi.read_body)
    discard = staticmethod(rsgi.discard_body)


_asgi: _BodyIO = _AsgiBody()
_rsgi: _BodyIO = _RsgiBody()


def _saturated() -> HttpError:
    return HttpError(
        429,
        "the server is saturated; retry later",
        cause="NF_CONGESTION_RISK",
        headers=[(b"retry-after", b"1")],
    )


def _remote(client: tuple[str, int] | str | None) -> str:
    """The rate-limit key of an unauthenticated caller: its IP address."""
    if isinstance(client, str):
        return f"ip:{client.rpartition(':')[0] or client}"
    return f"ip:{client[0]}" if client else "ip:?"


def _not_found(path: str) -> HttpError:
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] in KNOWN_APIS and parts[1] != "v1":
        return HttpError(400, f"API version {parts[1]!r} is not supported", cause="INVALID_API")
    return HttpError(404, f"no resource at {path}", cause="RESOURCE_URI_STRUCTURE_NOT_FOUND")


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
