"""What a registry's answers cannot make the transport do: send credentials to another origin,
read an endless body, or fail with a traceback on a malformed token answer. Real HTTP servers on
loopback play the registry, the other host and the token service."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from ocibuild.errors import AuthError, RegistryError
from ocibuild.oci.digest import Digest
from ocibuild.registry.auth import Credential
from ocibuild.registry.client import Repository
from ocibuild.registry.config import Endpoint
from ocibuild.registry.transport import RetryPolicy, Transport

ALICE = Credential("alice", "s3cret")
BASIC = "Basic " + base64.b64encode(b"alice:s3cret").decode()
ENDLESS = object()  # a body written until the client hangs up


class Server:
    """An HTTP/1.1 server on loopback answering with `respond(method, path, headers)` ->
    (status, headers, body), recording every request and counting the bytes of body sent."""

    def __init__(self, respond: Callable[[str, str, dict], tuple[int, dict, object]], port: int = 0):
        self.seen: list[tuple[str, str, dict]] = []
        self.sent = 0
        self.connections = 0  # TCP connections accepted
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                server.connections += 1
                super().setup()

            def do_GET(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.seen.append((self.command, self.path, headers))
                status, extra, body = respond(self.command, self.path, headers)
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                if body is ENDLESS:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    chunk = b"%x\r\n%s\r\n" % (1 << 16, b"{" * (1 << 16))
                    try:
                        while server.sent < 1 << 30:
                            self.wfile.write(chunk)
                            server.sent += 1 << 16
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_HEAD = do_PUT = do_POST = do_PATCH = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    started = []

    def start(respond) -> Server:
        started.append(Server(respond))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def transport(host: str, credential: Credential | None = ALICE, scheme: str = "http") -> Transport:
    return Transport(Endpoint(host, scheme), credential, RetryPolicy(attempts=2, timeout=5, deadline=5))


def test_an_upload_location_on_another_origin_gets_no_credentials(serve, tmp_path):
    other = serve(lambda method, path, headers: (201, {}, b""))

    def registry(method, path, headers):
        if headers.get("authorization") != BASIC:
            return 401, {"WWW-Authenticate": 'Basic realm="r"'}, b""
        return 202, {"Location": f"http://{other.host}/upload/1"}, b""

    home = serve(registry)
    blob = tmp_path / "blob"
    blob.write_bytes(b"layer")
    Repository(transport(home.host), "x/y").upload(Digest.of(b"layer"), 5, blob)
    assert [m for m, _, h in home.seen if h.get("authorization") == BASIC] == ["POST"]
    assert [(m, "authorization" in h) for m, _, h in other.seen] == [("PUT", False)]


def test_a_challenge_from_a_redirect_target_is_not_answered_with_credentials(serve):
    tokens = serve(lambda method, path, headers: (200, {}, b'{"token": "t"}'))
    other = serve(lambda method, path, headers: (
        401, {"WWW-Authenticate": f'Bearer realm="http://{tokens.host}/token",service="s"'}, b""))
    home = serve(lambda method, path, headers: (307, {"Location": f"http://{other.host}{path}"}, b""))
    with pytest.raises(RegistryError, match="HTTP 401"):
        Repository(transport(home.host), "x/y").manifest("tag")
    assert tokens.seen == []


def test_the_same_origin_spelled_differently_keeps_its_credentials(serve, tmp_path):
    def registry(method, path, headers):
        if headers.get("authorization") != BASIC:
            return 401, {"WWW-Authenticate": 'Basic realm="r"'}, b""
        if method == "POST":
            port = registry.host.rsplit(":", 1)[1]
            return 202, {"Location": f"HTTP://127.0.0.1:{port}/v2/x/y/blobs/uploads/1"}, b""
        return 201, {}, b""

    home = serve(registry)
    registry.host = home.host
    blob = tmp_path / "blob"
    blob.write_bytes(b"layer")
    Repository(transport(home.host), "x/y").upload(Digest.of(b"layer"), 5, blob)
    assert [(m, h.get("authorization") == BASIC) for m, _, h in home.seen if m != "POST" or "authorization" in h] \
        == [("POST", True), ("PUT", True)]


def test_an_endless_error_body_is_not_read(serve):
    home = serve(lambda method, path, headers: (404, {"Content-Type": "application/json"}, ENDLESS))
    with pytest.raises(RegistryError, match=r"HTTP 404$"):
        Repository(transport(home.host, None), "x/y").manifest("tag")
    assert home.sent < 64 << 20  # what socket buffers took before the client hung up, not the 1 GiB offered


@pytest.mark.parametrize("answer, outcome", [
    (b'["a list"]', "the token service sent no token"),
    (b'{"token": 5}', "the token service sent no token"),
    (b"not json", "the token service sent no token"),
    (ENDLESS, "the token service sent no token"),
    (b'{"token": "t", "expires_in": 1e999}', None),
    (b'{"access_token": "t", "expires_in": "soon"}', None),
])
def test_token_answers_are_checked(serve, answer, outcome):
    tokens = serve(lambda method, path, headers: (200, {"Content-Type": "application/json"}, answer))

    def registry(method, path, headers):
        if headers.get("authorization") != "Bearer t":
            return 401, {"WWW-Authenticate": f'Bearer realm="http://{tokens.host}/token",service="r"'}, b""
        return 200, {}, b"{}"

    home = serve(registry)
    check = lambda: transport(home.host).request("GET", "/v2/", (), expected=(200,)).close()  # noqa: E731
    if outcome is None:
        check()
        assert home.seen[-1][2]["authorization"] == "Bearer t"
    else:
        with pytest.raises(AuthError, match=outcome):
            check()
        assert tokens.sent < 64 << 20


def test_an_https_registry_never_sends_credentials_to_a_plain_http_token_service():
    answer = requests.Response()
    answer.status_code = 401
    answer.headers["WWW-Authenticate"] = 'Bearer realm="http://127.0.0.1:9/token",service="r"'
    with pytest.raises(AuthError, match="named a token service that is not HTTPS"):
        transport("registry.invalid", scheme="https")._authenticate(answer, ("repository:x/y:pull",), "read")


def test_a_short_answer_is_read_whole_and_its_connection_reused(serve):
    """Bounded reads must not cost a new connection per request on the push path: a short body
    (a 404's, a small JSON answer) is read to its end so that urllib3 reuses the connection."""
    home = serve(lambda method, path, headers: (404 if "blobs" in path else 200, {}, b'{"errors": []}'))
    client = transport(home.host, None)
    repository = Repository(client, "x/y")
    for _ in range(3):
        assert not repository.blob_exists(Digest.of(b"x"))
        client.request("GET", "/v2/", (), expected=(200,)).close()
    assert home.connections == 1


def test_a_refused_connection_is_final_until_the_registry_has_answered(serve):
    """Refused at first contact: nothing listens there, said at once. Refused after answers: a
    registry restarting, retried until it listens again."""
    patient = RetryPolicy(attempts=8, backoff=0.1, max_wait=0.2, timeout=5, deadline=10)
    server = serve(lambda method, path, headers: (200, {}, b"{}"))
    host = server.host
    server.stop()
    started = time.monotonic()
    with pytest.raises(RegistryError, match=rf"^{host} refused the connection \(GET http://{host}/v2/\): "
                                            "no registry listens there$"):
        Transport(Endpoint(host, "http"), None, patient).request("GET", "/v2/", (), expected=(200,))
    assert time.monotonic() - started < 1  # not one backoff of the eight

    server = serve(lambda method, path, headers: (200, {}, b"{}"))
    host, port = server.host, int(server.host.rsplit(":", 1)[1])
    moved = Transport(Endpoint(host, "http"), None, patient)
    moved.request("GET", "/v2/", (), expected=(200,))
    server.stop()
    moved.session.close()  # its kept-alive connection went with the registry
    restarted = []
    threading.Timer(0.3, lambda: restarted.append(Server(lambda m, p, h: (200, {}, b"{}"), port))).start()
    try:
        assert moved.request("GET", "/v2/", (), expected=(200,)).status_code == 200
        assert restarted and restarted[0].seen == [("GET", "/v2/", restarted[0].seen[0][2])]
    finally:
        for again in restarted:
            again.stop()


def test_a_refused_redirect_target_is_not_called_a_registry_that_is_not_there(serve):
    """The registry answered (with a redirect): the refusal is the blob store's, retried."""
    gone = serve(lambda method, path, headers: (200, {}, b""))
    target = gone.host
    gone.stop()
    registry = serve(lambda method, path, headers: (307, {"Location": f"http://{target}/blob"}, b""))
    quick = RetryPolicy(attempts=2, backoff=0.01, max_wait=0.01, timeout=5, deadline=5)
    with pytest.raises(RegistryError) as failed:
        Transport(Endpoint(registry.host, "http"), None, quick).request("GET", "/v2/x/blobs/sha256:0", (), expected=(200,))
    assert "no registry listens there" not in str(failed.value) and "did not answer" in str(failed.value)
