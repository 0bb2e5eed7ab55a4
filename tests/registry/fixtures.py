"""Real registries on loopback for the tests: the CNCF distribution registry (`docker-registry`)
with no auth, htpasswd Basic auth or token auth; a token server; and a fault-injecting proxy."""

from __future__ import annotations

import base64
import collections
import datetime
import itertools
import json
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import requests
import yaml

from tests.conftest import free_port

SERVICE = "ocibuild-test-registry"
ISSUER = "ocibuild-test-issuer"


@dataclass
class Registry:
    host: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def start_registry(root: Path, auth: dict | None = None) -> Registry:
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "ocibuild-tests"},
    }
    if auth:
        config["auth"] = auth
    (root / "config.yml").write_text(yaml.safe_dump(config))
    log = root / "registry.log"
    process = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")],
                               stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    host = f"127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(f"http://{host}/v2/", timeout=1)
            return Registry(host, process, log)
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the registry did not start: {log.read_text()}")


def htpasswd_file(path: Path, users: dict[str, str]) -> Path:
    lines = [subprocess.run(["htpasswd", "-Bbn", user, password], capture_output=True, text=True, check=True).stdout.strip()
             for user, password in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class TokenServer:
    """Issues registry tokens: users with the right password get what they ask, anonymous gets pull."""

    def __init__(self, root: Path, users: dict[str, str]):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.users = users
        self.requests: list[dict] = []
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ocibuild test token issuer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1)).sign(self.key, hashes.SHA256()))
        self.cert_der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.cert_path = root / "token-cert.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                query = parse_qs(urlparse(self.path).query)
                user = server.check(self.headers.get("Authorization"))
                server.requests.append({"user": user, "scope": query.get("scope", [])})
                if user is False:
                    self.send_response(401)
                    self.end_headers()
                    return
                token = server.token(user, query.get("scope", []))
                body = json.dumps({"token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def check(self, header: str | None):
        """The user name, None for anonymous, False for wrong credentials."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        user, _, password = base64.b64decode(value).decode().partition(":")
        return user if scheme == "Basic" and self.users.get(user) == password else False

    def token(self, user: str | None, scopes: list[str]) -> str:
        import jwt

        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            granted = actions.split(",") if user else [a for a in actions.split(",") if a == "pull"]
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": [self.cert_der]})

    def auth_config(self) -> dict:
        return {"token": {"realm": self.url, "service": SERVICE, "issuer": ISSUER,
                          "rootcertbundle": str(self.cert_path)}}

    def stop(self) -> None:
        self.httpd.shutdown()


class FaultProxy:
    """A reverse proxy in front of a registry that misbehaves on a fixed cycle of requests.

    Faults: "ok", "reset" (drop the connection), "500", "429" (Retry-After: 0), "stall" (answer
    nothing for `stall` seconds, then drop). `corrupt_blobs` flips a byte of every blob body: a
    registry that lies about a digest.

    The cycle is shared by every client thread, so concurrent requests interleave on it: one
    request's retries could draw nothing but faults. To keep the test about recovering, not about
    luck, one method and path is faulted at most `faults_per_request` times; after that it is
    served, so a client with more attempts than that always gets through.
    """

    HOP = {"connection", "transfer-encoding", "keep-alive", "content-length"}

    def __init__(self, upstream: str, faults: list[str], stall: float = 3.0, corrupt_blobs: bool = False,
                 faults_per_request: int = 3):
        self.upstream = f"http://{upstream}"
        self.corrupt_blobs = corrupt_blobs
        self.cycle = itertools.cycle(faults)
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str, str]] = []
        self.faulted: collections.Counter[tuple[str, str]] = collections.Counter()
        self.connections = 0  # accepted: a client that reuses its connections opens few
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with proxy.lock:
                    proxy.connections += 1

            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    fault = next(proxy.cycle)
                    key = (self.command, self.path.partition("?")[0])
                    if fault != "ok" and proxy.faulted[key] >= faults_per_request:
                        fault = "ok"
                    proxy.faulted[key] += fault != "ok"
                    proxy.seen.append((self.command, self.path, fault))
                if fault == "reset":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault == "stall":
                    time.sleep(stall)
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault in ("500", "429"):
                    self.send_response(int(fault))
                    if fault == "429":
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                answer = requests.request(self.command, proxy.upstream + self.path, headers=headers, data=body,
                                          allow_redirects=False, stream=True, timeout=60)
                content = answer.raw.read() if self.command != "HEAD" else b""
                if proxy.corrupt_blobs and self.command == "GET" and "/blobs/" in self.path and content:
                    content = bytes([content[0] ^ 0xFF]) + content[1:]
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() == "location":
                        value = value.replace(proxy.upstream, proxy.url)
                    if key.lower() not in proxy.HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", answer.headers.get("Content-Length", "0") if self.command == "HEAD"
                                 else str(len(content)))
                self.end_headers()
                if content:
                    self.wfile.write(content)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_one

        self.httpd = _QuietServer(("127.0.0.1", free_port()), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"http://{self.host}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def faults_served(self) -> set[str]:
        return {fault for _, _, fault in self.seen}

    def stop(self) -> None:
        self.httpd.shutdown()


class _QuietServer(ThreadingHTTPServer):
    """Dropped and stalled connections are the point here: do not print their tracebacks."""

    def handle_error(self, request, client_address):
        pass
