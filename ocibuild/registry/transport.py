"""HTTP to one registry endpoint: authentication challenges, tokens per scope, and retries.

A 401 carries a `WWW-Authenticate` challenge: Basic is answered with the keychain's credential;
Bearer with a token from the realm for exactly the scopes the request needs (a pull token does
not serve a push, so tokens are cached per scope set). Connection resets, timeouts, 5xx and 429
are retried with exponential backoff (429 and 503 honour `Retry-After`); a body is re-opened for
each attempt, so uploads stream from disk and survive a retry. A refused connection is retried
only once the endpoint has answered (a registry restarting mid-push); before that, nothing
listens there (a wrong host or port, a registry not started), and waiting would only delay
saying so. Messages never carry secrets.

A registry's answers are input from elsewhere. Credentials and tokens go only to the endpoint's
own origin (scheme, host and port): an upload `Location` may name another host, and requests
strips `Authorization` on redirects but not on a URL we were told to use; a 401 from another
origin (a redirect's target) is not answered with a token request. A token realm is not
taken over plain HTTP for an HTTPS registry. Every answer streams, and a body is read only as
far as its reader asks: an error body or a token answer at most `MAX_ANSWER` bytes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urljoin, urlsplit

import requests

from ocibuild.errors import AuthError, RegistryError
from ocibuild.registry.auth import Credential
from ocibuild.registry.config import Endpoint

log = logging.getLogger(__name__)
Body = bytes | Callable[[], object] | None
MAX_ANSWER = 64 * 1024  # an error body or a token answer; manifests and blobs have their own bounds
MAX_TOKEN_LIFE = 24 * 3600


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one request: no new attempt starts after `deadline` seconds, and each attempt
    waits at most `timeout` seconds for a connection or for the next bytes of an answer (a slow
    upload that keeps moving is never cut). `OCIBUILD_REGISTRY_TIMEOUT` sets both."""

    attempts: int = 6
    backoff: float = 0.25  # seconds, doubled per attempt
    max_wait: float = 10.0
    timeout: float = 30.0
    deadline: float = 30.0

    @classmethod
    def from_env(cls, environ=os.environ) -> RetryPolicy:
        value = environ.get("OCIBUILD_REGISTRY_TIMEOUT")
        if not value:
            return cls()
        try:
            seconds = float(value)
            if not 0 < seconds <= 86400:
                raise ValueError
        except ValueError:
            raise RegistryError(f"OCIBUILD_REGISTRY_TIMEOUT must be a number of seconds, not {value!r}") from None
        return cls(timeout=seconds, deadline=seconds)


@dataclass
class Stats:
    requests: int = 0
    bytes_sent: int = 0


class Transport:
    def __init__(self, endpoint: Endpoint, credential: Credential | None, retry: RetryPolicy = RetryPolicy()):
        self.endpoint = endpoint
        self.credential = credential
        self.retry = retry
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "ocibuild"
        self.stats = Stats()
        self._lock = threading.Lock()
        self._tokens: dict[frozenset[str], tuple[str, float]] = {}
        self._basic = False
        self._answered = False  # has the endpoint answered anything yet?

    @property
    def host(self) -> str:
        return self.endpoint.host

    def url(self, path_or_url: str) -> str:
        return urljoin(self.endpoint.base_url + "/", path_or_url)

    def request(self, method: str, path_or_url: str, scopes: tuple[str, ...], *, expected: tuple[int, ...],
                headers: dict | None = None, body: Body = None, size: int = 0, stream: bool = False,
                what: str = "") -> requests.Response:
        """Send, authenticating once on a 401 and retrying transient failures. With `stream`, the
        answer's body is left for the caller to read as far as it needs, and to close."""
        url = self.url(path_or_url)
        ours = _origin(url) == _origin(self.endpoint.base_url)
        authenticated = not ours  # another origin gets no credentials, so nothing to answer a 401 with
        deadline = time.monotonic() + self.retry.deadline
        for attempt in range(self.retry.attempts):
            data = body() if callable(body) else body
            auth = self._auth_header(scopes) if ours else {}
            try:
                response = self.session.request(method, url, headers={**(headers or {}), **auth}, data=data,
                                                stream=True, timeout=self.retry.timeout, allow_redirects=True)
            except (requests.ConnectionError, requests.Timeout) as exc:
                failed = getattr(getattr(exc, "request", None), "url", None) or url  # after redirects
                if (_failure(exc) == "connection refused" and not self._answered
                        and _origin(failed) == _origin(self.endpoint.base_url)
                        and not requests.utils.get_environ_proxies(failed)):  # a proxy refusing is not the registry
                    raise RegistryError(f"{self.host} refused the connection ({method} {url}): "
                                        "no registry listens there") from None
                self._wait(attempt, f"{method} {url}: {_failure(exc)}", deadline=deadline)
                continue
            except requests.RequestException as exc:  # redirect loops, invalid URLs: not transient
                raise RegistryError(f"{self.host}: {what or method}: {type(exc).__name__}: {exc}") from None
            finally:
                if hasattr(data, "close"):
                    data.close()
            self._answered = True
            with self._lock:
                self.stats.requests += 1
                self.stats.bytes_sent += size
            status = response.status_code
            if status == 401 and not authenticated and _origin(response.url) == _origin(self.endpoint.base_url):
                authenticated = True
                _read_answer(response)
                self._authenticate(response, scopes, what)
                continue
            if status == 429 or status >= 500:
                _read_answer(response)
                self._wait(attempt, f"{method} {url}: HTTP {status}", response.headers.get("Retry-After"), deadline,
                           answered=True)
                continue
            if status in expected:
                if not stream:
                    _read_answer(response)  # read to its end (the connection is reused) unless it is long
                return response
            raise self._error(response, what)
        raise RegistryError(f"{self.host}: {what or method} failed after {self.retry.attempts} attempts")

    def _wait(self, attempt: int, reason: str, retry_after: str | None = None, deadline: float | None = None,
              answered: bool = False) -> None:
        """Sleep before the next attempt, or give up; `answered`: the failure was an HTTP status,
        a server failing, not silence."""
        delay = min(self.retry.backoff * 2 ** attempt, self.retry.max_wait)
        if retry_after and retry_after.isdigit():
            delay = min(float(retry_after), self.retry.max_wait)
        out_of_time = deadline is not None and time.monotonic() + delay > deadline
        if attempt + 1 >= self.retry.attempts or out_of_time:
            verb = "kept failing" if answered else "did not answer"
            raise RegistryError(f"{self.host} {verb}: {reason} (tried {attempt + 1} times"
                                + (f" in {self.retry.deadline:g} s)" if out_of_time else ")"))
        log.debug("retrying in %.2fs: %s", delay, reason)
        time.sleep(delay)

    def _auth_header(self, scopes: tuple[str, ...]) -> dict:
        with self._lock:
            token = self._tokens.get(frozenset(scopes))
        if token and token[1] > time.monotonic():
            return {"Authorization": f"Bearer {token[0]}"}
        if self._basic and self.credential:
            return {"Authorization": f"Basic {self.credential.basic()}"}
        return {}

    def _authenticate(self, response: requests.Response, scopes: tuple[str, ...], what: str) -> None:
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if not self.credential:
                raise AuthError(f"{self.host} requires credentials for {what or 'this request'}: "
                                f"run `ocibuild login {self.host}`")
            self._basic = True
            return
        if scheme != "bearer":
            raise AuthError(f"{self.host} asked for unsupported authentication {scheme or '(none)'!r}")
        from oras.auth.utils import parse_auth_header  # oras loads all its auth backends: only once a registry asks

        parsed = parse_auth_header(challenge)
        if not parsed.realm:
            raise AuthError(f"{self.host} sent a Bearer challenge without a realm")
        if self.endpoint.scheme == "https" and urlsplit(parsed.realm).scheme != "https":
            raise AuthError(f"{self.host} named a token service that is not HTTPS ({parsed.realm}): refusing to "
                            "send credentials there")
        wanted = list(scopes) + ([parsed.scope] if parsed.scope and parsed.scope not in scopes else [])
        token, expires_in = self._fetch_token(parsed.realm, parsed.service, wanted)
        with self._lock:
            self._tokens[frozenset(scopes)] = (token, time.monotonic() + max(expires_in - 10, 10))

    def _fetch_token(self, realm: str, service: str | None, scopes: list[str]) -> tuple[str, int]:
        params = [("scope", s) for s in scopes] + ([("service", service)] if service else [])
        c = self.credential
        for attempt in range(self.retry.attempts):
            try:
                if c and c.identity_token:  # OAuth2 refresh token, as docker login stores for some registries
                    form = {"grant_type": "refresh_token", "refresh_token": c.identity_token, "client_id": "ocibuild",
                            "service": service or "", "scope": " ".join(scopes)}
                    answer = self.session.post(realm, data=form, timeout=self.retry.timeout, stream=True)
                else:
                    auth = (c.username, c.password) if c and c.username else None
                    answer = self.session.get(realm, params=params, auth=auth, timeout=self.retry.timeout, stream=True)
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._wait(attempt, f"token service {realm}: {type(exc).__name__}")
                continue
            except requests.RequestException as exc:
                raise AuthError(f"{self.host}: the token service {realm}: {type(exc).__name__}") from None
            body = _read_answer(answer)
            if answer.status_code == 429 or answer.status_code >= 500:
                self._wait(attempt, f"token service {realm}: HTTP {answer.status_code}", answer.headers.get("Retry-After"),
                           answered=True)
                continue
            if answer.status_code in (401, 403):
                who = f"user {c.username!r}" if c and c.username else "anonymous access"
                raise AuthError(f"{self.host}: the token service refused {who} "
                                f"for {', '.join(scopes)} (HTTP {answer.status_code}); check `ocibuild login {self.host}`")
            if answer.status_code != 200:
                raise AuthError(f"{self.host}: the token service answered HTTP {answer.status_code}")
            return _token(body, self.host)
        raise AuthError(f"{self.host}: the token service did not answer")

    def _error(self, response: requests.Response, what: str) -> RegistryError:
        status = response.status_code
        detail = registry_error_detail(_read_answer(response))
        subject = what or f"{response.request.method} {response.request.path_url}"
        if status in (401, 403):
            who = f" as {self.credential.username!r}" if self.credential and self.credential.username else " (anonymous)"
            return AuthError(f"{self.host} denied {subject}{who}: HTTP {status}{detail}")
        return RegistryError(f"{self.host}: {subject}: HTTP {status}{detail}")


def _failure(exc: requests.RequestException) -> str:
    """`connection refused` says nothing listens there; a bare `ConnectionError` did not."""
    return "connection refused" if "Connection refused" in str(exc) else type(exc).__name__


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:  # not a port: no origin of ours
        port = -1
    return parts.scheme, (parts.hostname or "").lower(), port


def _read_answer(response: requests.Response) -> bytes:
    """At most MAX_ANSWER bytes of a body, and the response closed. A body read to its end lets
    urllib3 put the connection back in its pool; a longer one is never read (it is closed)."""
    try:
        return response.raw.read(MAX_ANSWER, decode_content=True) or b""
    except (OSError, ValueError):
        return b""
    finally:
        response.close()


def _token(body: bytes, host: str) -> tuple[str, int]:
    """(token, seconds it lives) from a token service's JSON answer."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    token = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise AuthError(f"{host}: the token service sent no token")
    life = data.get("expires_in")
    valid = isinstance(life, (int, float)) and not isinstance(life, bool) and math.isfinite(life) and life > 0
    return token, int(min(life, MAX_TOKEN_LIFE)) if valid else 60


def registry_error_detail(body: bytes) -> str:
    """The registry's own error codes, if it sent the standard JSON error body."""
    try:
        errors = json.loads(body or b"{}").get("errors") or []
        return "".join(f" {e.get('code', '')}: {e.get('message', '')}".rstrip(": ") for e in errors[:3])
    except (ValueError, AttributeError, RecursionError):
        return ""
