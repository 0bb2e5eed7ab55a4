"""The ASGI application: `POST /<api>` for each `@api` method, probes, metrics and docs.

Written against bare ASGI so that images need no web framework: uvicorn is the only server-side
dependency. Bad input is always a 400 with a JSON `error`; only a failure inside the service
itself is a 500.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from typing import Any

from ocibuild.runtime.metrics import Metrics
from ocibuild.sdk.openapi import openapi_document
from ocibuild.errors import SchemaError
from ocibuild.sdk.schema import check
from ocibuild.sdk.service import ApiSpec, ServiceSpec

log = logging.getLogger("ocibuild.runtime")
MAX_BODY = 64 * 1024 * 1024


class BadRequest(Exception):
    pass


class ServiceApp:
    def __init__(self, spec: ServiceSpec, instance: Any):
        self.spec = spec
        self.instance = instance
        self.apis = {f"/{a.name}": a for a in spec.apis}
        self.metrics = Metrics()
        self.docs = json.dumps(openapi_document(spec)).encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        path, method = scope["path"], scope["method"]
        status, body, content_type = await self._route(path, method, receive)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        endpoint = path if path in self.apis or path in _GET_ROUTES else "other"
        self.metrics.observe(endpoint, status, time.perf_counter() - started)

    async def _route(self, path: str, method: str, receive) -> tuple[int, bytes, bytes]:
        if path in _GET_ROUTES:
            if method not in ("GET", "HEAD"):
                return _error(405, f"{method} not allowed on {path}")
            if path == "/metrics":
                return 200, self.metrics.render().encode(), b"text/plain; version=0.0.4"
            if path == "/docs.json":
                return 200, self.docs, b"application/json"
            return 200, b'{"status":"ok"}', b"application/json"
        api = self.apis.get(path)
        if api is None:
            return _error(404, f"no endpoint {path}")
        if method != "POST":
            return _error(405, f"use POST for {path}")
        try:
            kwargs = arguments(api, await _read_body(receive))
        except BadRequest as exc:
            return _error(400, str(exc))
        try:
            result = await self._call(api, kwargs)
            return 200, json.dumps(result).encode(), b"application/json"
        except Exception:
            log.exception("%s failed", api.name)
            return _error(500, f"{api.name} failed: see the server log")

    async def _call(self, api: ApiSpec, kwargs: dict) -> Any:
        method = getattr(self.instance, api.name)
        if inspect.iscoroutinefunction(method):
            return await method(**kwargs)
        return await asyncio.get_running_loop().run_in_executor(None, lambda: method(**kwargs))


_GET_ROUTES = ("/healthz", "/livez", "/readyz", "/metrics", "/docs.json")


def arguments(api: ApiSpec, body: bytes) -> dict:
    """The keyword arguments for `api` from a JSON body, or BadRequest naming what is wrong."""
    try:
        data = json.loads(body or b"{}")
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("body is not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object of the endpoint's parameters")
    known = {p.name for p in api.parameters}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}")
    kwargs = {}
    for p in api.parameters:
        if p.name not in data:
            if p.required:
                raise BadRequest(f"missing field: {p.name}")
            continue
        try:
            kwargs[p.name] = check(data[p.name], p.hint, p.name)
        except SchemaError as exc:
            raise BadRequest(str(exc)) from None
    return kwargs


async def _read_body(receive) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequest("body too large")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _error(status: int, message: str) -> tuple[int, bytes, bytes]:
    return status, json.dumps({"error": message}).encode(), b"application/json"
