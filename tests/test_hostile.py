"""Hostile inputs through the real CLI: each is refused in one line, and nothing is lost or left.

Every input is generated here (no binary is checked in): OCI layouts and archives, docker
archives, a fake registry on loopback, bad hosts and ports, bad environment, a full disk, a
SIGKILL. Each refusal is checked for its exact line, for a victim directory that stays as it was,
for an `$OCIBUILD_HOME` whose files are byte-for-byte the same, and for no temp file left behind.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ocibuild.oci import mediatypes
from tests.conftest import ECHO, copy_service, free_port, need, run_process
from tests.hostile import file, header_bomb, make_tar, make_victim, snapshot
from tests.registry.conftest import plain_registry, registry_bin  # noqa: F401  (fixtures)

BENTO = "echo:1"


# --- the state every refusal must leave as it was ---------------------------------------------


def files(root: Path) -> dict[str, bytes | str]:
    """Every file (bytes) and symlink (target) under `root`: what "byte-for-byte unchanged" means.
    Directories are left out: a refusal may create an empty `cache/tmp`, never a file in it."""
    found: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                found[str(path.relative_to(root))] = os.readlink(path)
            elif path.is_file():
                found[str(path.relative_to(root))] = path.read_bytes()
    return found


class Guard:
    """Snapshots of the home, a victim directory and an output directory, taken before a case."""

    def __init__(self, home: Path, tmp: Path):
        self.home, self.out = home, tmp / "out"
        self.out.mkdir(parents=True, exist_ok=True)
        self.victim = make_victim(tmp / "victim")
        self.before = (files(home), snapshot(self.victim), sorted(os.listdir(self.out)))

    def unchanged(self) -> None:
        # what the host's bytecode compiler is may be learnt by any command that containerizes: a
        # fact about this machine, not anything the input wrote
        learnt = f"cache{os.sep}interpreters{os.sep}"
        assert {k: v for k, v in files(self.home).items() if not k.startswith(learnt)} == self.before[0], \
            "the store or cache changed"
        assert snapshot(self.victim) == self.before[1], "the victim directory changed"
        assert sorted(os.listdir(self.out)) == self.before[2], "something was left in the output directory"
        tmp = self.home / "cache" / "tmp"
        assert not tmp.exists() or not os.listdir(tmp), f"temp files left: {os.listdir(tmp)}"


STEP = re.compile(r"^[a-z][^:]*: \d+\.\d\d s$")  # a finished step's line, as a CI log shows it


def refused(result, line: str) -> None:
    """Exit non-zero, exactly one error line on stderr, exactly `line`, no traceback (the steps
    that finished before it may have their own lines)."""
    stderr = result.stderr
    assert result.exit_code if hasattr(result, "exit_code") else result.returncode, stderr
    assert "Traceback" not in stderr
    lines = [x for x in stderr.splitlines() if not STEP.match(x)]
    assert lines == [f"error: {line}"], stderr


# --- a bento to containerize, and a valid base built by hand ----------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A home holding the echo service as bento echo:1 (built once; copied for each test)."""
    root = tmp_path_factory.mktemp("hostile")
    home = root / "home"
    src = copy_service(ECHO, root / "echo")
    result = run_process("build", str(src), "--version", "1", env={"OCIBUILD_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    return home


@pytest.fixture
def guarded(template, home, tmp_path) -> Guard:
    shutil.copytree(template, home, symlinks=True)
    return Guard(home, tmp_path)


def put_blob(root: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = root / "blobs" / "sha256" / digest[7:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def descriptor(root: Path, media_type: str, data: bytes, **extra) -> dict:
    return {"mediaType": media_type, "digest": put_blob(root, data), "size": len(data), **extra}


def small_layer(payload: int = 0) -> bytes:
    """A tar with `hello.txt`, and `payload` random bytes in `payload.bin` when asked."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in (("hello.txt", b"hello\n"), ("payload.bin", os.urandom(payload) if payload else b"")):
            if data:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def image_manifest(root: Path, arch: str = "amd64", layer: dict | None = None, payload: int = 0) -> bytes:
    """A one-layer image's manifest (its blobs written under `root`)."""
    data = small_layer(payload)
    layer = layer or descriptor(root, mediatypes.LAYER, data)
    config = json.dumps({"architecture": arch, "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(data).hexdigest()]}}
                        ).encode()
    return json.dumps({"schemaVersion": 2, "mediaType": mediatypes.MANIFEST,
                       "config": descriptor(root, mediatypes.CONFIG, config), "layers": [layer]}).encode()


def write_layout(root: Path, index: object) -> Path:
    """`index` as `index.json` (any JSON value, or raw bytes) beside an `oci-layout` file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_bytes(index if isinstance(index, bytes) else json.dumps(index).encode())
    return root


def image_layout(root: Path, arch: str = "amd64", payload: int = 0) -> Path:
    manifest = descriptor(root, mediatypes.MANIFEST, image_manifest(root, arch, payload=payload))
    return write_layout(root, {"schemaVersion": 2, "manifests": [manifest]})


def as_archive(layout: Path, dest: Path) -> Path:
    """The layout as an OCI archive (tar), keeping symlinks, fifos and directories as members."""
    with tarfile.open(dest, "w") as tar:
        for path in sorted(layout.rglob("*")):
            tar.add(path, arcname=path.relative_to(layout).as_posix(), recursive=False)
    return dest


# --- OCI layouts and archives: as a base, and as what `ocibuild push` sends -------------------

BAD_HEX = "sha256:" + "A" * 64


def _bad_index(root: Path, value) -> Path:
    return write_layout(root, value)


def _bad_digest(digest: str):
    def make(root: Path) -> Path:
        return write_layout(root, {"schemaVersion": 2, "manifests": [
            {"mediaType": mediatypes.MANIFEST, "digest": digest, "size": 10}]})
    return make


def _manifest_blob_is(kind: str):
    """A layout whose manifest blob is a symlink to a host file, a fifo or a directory."""
    def make(root: Path) -> Path:
        layout = image_layout(root)
        index = json.loads((layout / "index.json").read_text())
        path = layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]
        path.unlink()
        if kind == "symlink":
            path.symlink_to("/etc/hostname")
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            path.mkdir()
        return layout
    return make


def _malformed_layer_digest(root: Path) -> Path:
    manifest = image_manifest(root, layer={"mediaType": mediatypes.LAYER, "digest": "sha256:../../etc/passwd",
                                           "size": 10})
    return write_layout(root, {"schemaVersion": 2, "manifests": [descriptor(root, mediatypes.MANIFEST, manifest)]})


def _layer_larger_than_declared(root: Path) -> Path:
    data = small_layer()  # 10 KiB of tar, declared as 10 bytes (with its true digest)
    manifest = image_manifest(root, layer={"mediaType": mediatypes.LAYER, "digest": put_blob(root, data), "size": 10})
    return write_layout(root, {"schemaVersion": 2, "manifests": [descriptor(root, mediatypes.MANIFEST, manifest)]})


def _manifest_larger_than_declared(root: Path) -> Path:
    layout = image_layout(root)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["size"] = 10
    return write_layout(root, index)


def _nested(root: Path) -> Path:
    child = descriptor(root, mediatypes.MANIFEST, image_manifest(root),
                       platform={"architecture": "amd64", "os": "linux"})
    for _ in range(10):
        index = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.INDEX, "manifests": [child]}).encode()
        child = descriptor(root, mediatypes.INDEX, index)
    return write_layout(root, {"schemaVersion": 2, "manifests": [child]})


def _fanned_out(root: Path, fanout: int = 8, levels: int = 4) -> Path:
    """Indexes `levels` deep, each listing its child `fanout` times: fanout**levels images to
    walk from a few kilobytes."""
    child = descriptor(root, mediatypes.MANIFEST, image_manifest(root),
                       platform={"architecture": "amd64", "os": "linux"})
    for _ in range(levels):
        index = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.INDEX, "manifests": [child] * fanout}).encode()
        child = descriptor(root, mediatypes.INDEX, index)
    return write_layout(root, {"schemaVersion": 2, "manifests": [child]})


def _referrers_fanned_out(root: Path, referrers: int = 5, fanout: int = 300) -> Path:
    """One image, and an artifact index whose subject is that image, listing it `fanout` times,
    listed `referrers` times in index.json: each load stays under the cap, their sum does not."""
    image = descriptor(root, mediatypes.MANIFEST, image_manifest(root),
                       platform={"architecture": "amd64", "os": "linux"})
    index = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.INDEX, "artifactType": "application/x-sbom",
                        "subject": image, "manifests": [image] * fanout}).encode()
    referrer = descriptor(root, mediatypes.INDEX, index, artifactType="application/x-sbom")
    return write_layout(root, {"schemaVersion": 2, "manifests": [image] + [referrer] * referrers})


@pytest.mark.parametrize("make", [_fanned_out, _referrers_fanned_out], ids=["indexes", "referrers"])
def test_a_layout_whose_indexes_fan_out_is_refused_before_its_walk(guarded, tmp_path, make):
    layout = make(tmp_path / "layout")
    started = time.monotonic()
    refused(run_process("push", str(layout), "127.0.0.1:9/x/y:t"),
            f"{layout} lists more than 1000 manifests under one: refusing it")
    assert time.monotonic() - started < 30
    guarded.unchanged()


def _digest_of(root: Path, n: int = 0) -> str:
    return json.loads((root / "index.json").read_text())["manifests"][n]["digest"]


# (id, make(root) -> layout, expected line for a layout at W: `{W}` is the path as given)
LAYOUTS = [
    ("index-null", lambda r: _bad_index(r, None), "{W}: index.json is not a JSON object"),
    ("index-nested-deep", lambda r: _bad_index(r, b'{"manifests": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
     "{W}: index.json is not valid JSON: nested too deeply"),
    ("index-string", lambda r: _bad_index(r, "x"), "{W}: index.json is not a JSON object"),
    ("index-list", lambda r: _bad_index(r, []), "{W}: index.json is not a JSON object"),
    ("index-empty", lambda r: _bad_index(r, {}), "{W}: index.json has no list of manifests"),
    ("manifests-string", lambda r: _bad_index(r, {"manifests": "x"}), "{W}: index.json has no list of manifests"),
    ("digest-traversal", _bad_digest("sha256:../../etc/hostname"),
     "{W}: index.json, manifest 0: invalid digest 'sha256:../../etc/hostname': expected sha256: and 64, "
     "or sha512: and 128, lower-case hex digits"),
    ("digest-uppercase", _bad_digest(BAD_HEX),
     f"{{W}}: index.json, manifest 0: invalid digest '{BAD_HEX}': expected sha256: and 64, "
     "or sha512: and 128, lower-case hex digits"),
    ("digest-nul", _bad_digest("sha256:" + "a" * 63 + "\0"),
     "{W}: index.json, manifest 0: invalid digest 'sha256:" + "a" * 63 + "\\x00': expected sha256: and 64, "
     "or sha512: and 128, lower-case hex digits"),
    ("blob-symlink", _manifest_blob_is("symlink"), "{W}: blobs/sha256/{M} {SYMLINK}"),
    ("blob-fifo", _manifest_blob_is("fifo"), "{W}: blobs/sha256/{M} is not a regular file"),
    ("blob-directory", _manifest_blob_is("directory"), "{W}: blobs/sha256/{M} is not a regular file"),
    ("layer-digest-malformed", _malformed_layer_digest,
     "layer 0 of {W}@sha256:{M}: invalid digest 'sha256:../../etc/passwd': expected sha256: and 64, "
     "or sha512: and 128, lower-case hex digits"),
    ("layer-larger-than-declared", _layer_larger_than_declared,
     "{W}: blob sha256:{L} is corrupt: more than the 10 bytes its descriptor declares"),
    ("manifest-larger-than-declared", _manifest_larger_than_declared,
     "{W}: blobs/sha256/{M} is larger than 10 bytes: refusing it"),
    ("nested-10-deep", _nested, "{W}: indexes nested too deep"),
]


def _expected(line: str, layout: Path, where: str) -> str:
    if "{M}" not in line and "{L}" not in line:
        return line.replace("{W}", where)
    index = json.loads((layout / "index.json").read_text() or "null")
    manifests = index.get("manifests") if isinstance(index, dict) else None
    first = manifests[0]["digest"][7:] if isinstance(manifests, list) and manifests else ""
    layer = ""
    blob = layout / "blobs" / "sha256" / first
    if first and blob.is_file() and not blob.is_symlink():
        layers = json.loads(blob.read_bytes()).get("layers") or [{}]
        layer = str(layers[0].get("digest", ""))[7:]
    return line.replace("{W}", where).replace("{M}", first).replace("{L}", layer)


@pytest.mark.parametrize("transport", ["oci-layout", "oci-archive"])
@pytest.mark.parametrize("case,make,line", LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_hostile_layout_as_base(guarded, ocibuild, tmp_path, transport, case, make, line):
    layout = make(tmp_path / "layout")
    source = layout if transport == "oci-layout" else as_archive(layout, tmp_path / "layout.tar")
    result = ocibuild("containerize", BENTO, "--base", f"{transport}:{source}", "-o", str(guarded.out / "img.tar"),
                      ok=False)
    symlink = "goes through a symlink: refusing it" if transport == "oci-layout" else "is not a regular file"
    refused(result, _expected(line, layout, str(source)).replace("{SYMLINK}", symlink))
    guarded.unchanged()


@pytest.mark.parametrize("transport", ["oci-layout", "oci-archive"])
@pytest.mark.parametrize("case,make,line", LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_hostile_layout_pushed(guarded, ocibuild, tmp_path, transport, case, make, line):
    """Refused before any connection: nothing listens at the target, and the line would say so."""
    layout = make(tmp_path / "layout")
    source = layout if transport == "oci-layout" else as_archive(layout, tmp_path / "layout.tar")
    result = ocibuild("push", str(source), f"127.0.0.1:{free_port()}/x/y:t", ok=False)
    symlink = "goes through a symlink: refusing it" if transport == "oci-layout" else "is not a regular file"
    if case == "nested-10-deep":  # the whole tree is read: the refusal names the index too deep
        digest = _digest_of(layout)
        for _ in range(4):
            digest = json.loads((layout / "blobs" / "sha256" / digest[7:]).read_bytes())["manifests"][0]["digest"]
        line = f"{{W}}@{digest}: indexes nested too deep"
    refused(result, _expected(line, layout, str(source)).replace("{SYMLINK}", symlink))
    guarded.unchanged()


# --- docker archives as a base ----------------------------------------------------------------


def docker_archive(dest: Path, manifest: object, extra: dict[str, bytes] | None = None) -> Path:
    """A docker archive: `manifest` as manifest.json, a valid config and layer beside it."""
    layer = small_layer()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}})
    members = {"manifest.json": json.dumps(manifest).encode(), "config.json": config.encode(), "layer.tar": layer,
               **(extra or {})}
    dest.write_bytes(make_tar([file(name, data) for name, data in members.items()], mode="w"))
    return dest


DOCKER = [
    ("manifest-null", None, "{W}: manifest.json is not a JSON list"),
    ("manifest-string", "x", "{W}: manifest.json is not a JSON list"),
    ("manifest-empty", [], "{W}: manifest.json lists no image"),
    ("layer-traversal", [{"Config": "config.json", "Layers": ["../../etc/passwd"]}], "{W}: ../../etc/passwd is missing"),
    ("layer-absolute", [{"Config": "config.json", "Layers": ["/etc/passwd"]}], "{W}: /etc/passwd is missing"),
    ("config-missing", [{"Layers": ["layer.tar"]}], "{W}: manifest.json needs a Config name and a list of Layers"),
    ("config-absent", [{"Config": "nothere.json", "Layers": ["layer.tar"]}], "{W}: nothere.json is missing"),
]


@pytest.mark.parametrize("case,manifest,line", DOCKER, ids=[c[0] for c in DOCKER])
def test_hostile_docker_archive(guarded, ocibuild, tmp_path, case, manifest, line):
    archive = docker_archive(tmp_path / "docker.tar", manifest)
    result = ocibuild("containerize", BENTO, "--base", f"docker-archive:{archive}", "-o", str(guarded.out / "i.tar"),
                      ok=False)
    refused(result, line.replace("{W}", f"docker-archive:{archive}"))
    guarded.unchanged()


def test_docker_archive_directory(guarded, ocibuild, tmp_path):
    (tmp_path / "dir").mkdir()
    result = ocibuild("containerize", BENTO, "--base", f"docker-archive:{tmp_path / 'dir'}", ok=False)
    refused(result, f"docker-archive:{tmp_path / 'dir'} is not a file")
    guarded.unchanged()


# --- a fake registry on loopback: as a base, and as a push target -----------------------------

CONFIG_183 = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                         "config": {}, "pad": "x" * 72}).encode()
assert len(CONFIG_183) == 183
HUGE = 512 << 20


def _manifest(config: bytes = CONFIG_183) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": mediatypes.MANIFEST, "layers": [],
                       "config": {"mediaType": mediatypes.CONFIG, "size": len(config),
                                  "digest": "sha256:" + hashlib.sha256(config).hexdigest()}}).encode()


class FakeRegistry:
    """A registry that misbehaves in one `mode`; records how many blob bytes it managed to send."""

    def __init__(self, mode: str):
        self.mode, self.sent = mode, 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, status: int, body: bytes = b"", **headers: str) -> None:
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(key.replace("_", "-"), value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self):
                fake.handle(self)

            do_HEAD = do_PUT = do_POST = do_PATCH = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, h) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        if length:
            h.rfile.read(length)
        path, mode = h.path.split("?")[0], self.mode
        if mode == "redirect":
            return h.answer(302, Location=h.path)
        if path == "/v2/":
            return h.answer(200, b"{}")
        if "/manifests/" in path and h.command in ("GET", "HEAD"):
            if mode == "non-json":
                return h.answer(200, b"<html>not a manifest</html>", Content_Type=mediatypes.MANIFEST)
            if mode == "bad-index":
                index = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.INDEX, "manifests": [
                    {"mediaType": mediatypes.MANIFEST, "digest": "sha256:../../etc/passwd", "size": 10,
                     "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
                return h.answer(200, index, Content_Type=mediatypes.INDEX)
            digest = "sha256:" + "0" * 64 if mode == "lying-digest" else "sha256:" + hashlib.sha256(_manifest()).hexdigest()
            return h.answer(200, _manifest(), Content_Type=mediatypes.MANIFEST, Docker_Content_Digest=digest)
        if "/blobs/uploads/" in path:
            return h.answer(202, Location=f"/v2/x/y/blobs/uploads/1")
        if "/blobs/" in path and h.command == "HEAD":
            return h.answer(200)  # "already there": the push goes straight to the manifest
        if "/blobs/" in path and mode == "huge-blob":
            h.send_response(200)
            h.send_header("Content-Length", str(HUGE))
            h.end_headers()
            chunk = b"\0" * (1 << 20)
            try:
                while self.sent < HUGE:
                    h.wfile.write(chunk)
                    self.sent += len(chunk)
            except OSError:
                pass
            return None
        if "/manifests/" in path and h.command == "PUT":
            return h.answer(201, Docker_Content_Digest="sha256:" + "0" * 64)
        return h.answer(404)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_registry():
    started = []

    def start(mode: str) -> FakeRegistry:
        started.append(FakeRegistry(mode))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def silent_host():
    """A socket that accepts connections (the kernel completes them) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


MANIFEST_DIGEST = "sha256:" + hashlib.sha256(_manifest()).hexdigest()
CONFIG_DIGEST = "sha256:" + hashlib.sha256(CONFIG_183).hexdigest()
INVALID = "expected sha256: and 64, or sha512: and 128, lower-case hex digits"
REGISTRY_BASES = [
    ("non-json", "the manifest of {H}/x/y:tag is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    ("lying-digest", "cannot pull {H}/x/y:tag: {H}/x/y: the manifest for tag hashes to " + MANIFEST_DIGEST
     + ", not sha256:" + "0" * 64 + ": refusing it"),
    ("huge-blob", "{H}/x/y sent a blob that does not match its digest: blob " + CONFIG_DIGEST
     + " is corrupt: more than the 183 bytes its descriptor declares"),
    ("bad-index", "the index of {H}/x/y:tag, manifest 0: invalid digest 'sha256:../../etc/passwd': " + INVALID),
    ("redirect", "cannot pull {H}/x/y:tag: {H}: read x/y:tag: TooManyRedirects: Exceeded 30 redirects."),
]


@pytest.mark.parametrize("mode,line", REGISTRY_BASES, ids=[c[0] for c in REGISTRY_BASES])
def test_hostile_registry_base(guarded, fake_registry, mode, line):
    registry = fake_registry(mode)
    started = time.monotonic()
    result = run_process("containerize", BENTO, "--base", f"{registry.host}/x/y:tag", "-o", str(guarded.out / "i.tar"),
                         env={"OCIBUILD_REGISTRY_TIMEOUT": "10"}, timeout=60)
    refused(result, line.replace("{H}", registry.host))
    guarded.unchanged()
    if mode == "huge-blob":  # stopped after the declared size: a few MiB in flight at most, not 512
        assert time.monotonic() - started < 10
        assert registry.sent < 64 << 20, registry.sent


def test_registry_base_that_never_answers(guarded, silent_host):
    started = time.monotonic()
    result = run_process("containerize", BENTO, "--base", f"{silent_host}/x/y:tag", env={"OCIBUILD_REGISTRY_TIMEOUT": "3"},
                         timeout=60)
    elapsed = time.monotonic() - started
    refused(result, f"cannot pull {silent_host}/x/y:tag: {silent_host} did not answer: GET http://{silent_host}"
                    "/v2/x/y/manifests/tag: ReadTimeout (tried 1 times in 3 s)")
    assert elapsed < 10, elapsed
    guarded.unchanged()


def test_a_registry_error_body_nested_too_deep_adds_nothing_to_the_message():
    from ocibuild.registry.transport import registry_error_detail

    assert registry_error_detail(b'{"errors": ' + b"[" * 100_000 + b"]" * 100_000 + b"}") == ""
    assert registry_error_detail(b'{"errors": [{"code": "DENIED", "message": "no"}]}') == " DENIED: no"


def test_retry_policy_defaults():
    from ocibuild.registry.transport import RetryPolicy

    assert RetryPolicy().timeout == 30 and RetryPolicy().deadline == 30
    assert RetryPolicy.from_env({}) == RetryPolicy()
    assert RetryPolicy.from_env({"OCIBUILD_REGISTRY_TIMEOUT": "3"}).deadline == 3


def test_push_to_hostile_registries(guarded, fake_registry, silent_host, tmp_path):
    """A valid layout: every refusal comes from the registry it is pushed to."""
    layout = image_layout(tmp_path / "layout")
    manifest = _digest_of(layout)
    env = {"OCIBUILD_REGISTRY_TIMEOUT": "3"}
    lying = fake_registry("lying-digest")
    refused(run_process("push", str(layout), f"{lying.host}/x/y:t", env=env),
            f"{lying.host}/x/y: stored the manifest as sha256:{'0' * 64}, but its bytes hash to {manifest}")
    loop = fake_registry("redirect")
    line = run_process("push", str(layout), f"{loop.host}/x/y:t", env=env)
    refused(line, line.stderr.strip().removeprefix("error: "))  # one of the blob checks; which one is racy
    assert line.stderr.startswith(f"error: {loop.host}: check blob sha256:") and "TooManyRedirects" in line.stderr
    started = time.monotonic()
    silent = run_process("push", str(layout), f"{silent_host}/x/y:t", env=env)
    assert time.monotonic() - started < 10
    refused(silent, silent.stderr.strip().removeprefix("error: "))
    assert silent.stderr.startswith(f"error: {silent_host} did not answer: ") and "(tried 1 times in 3 s)" in silent.stderr
    guarded.unchanged()


def test_bad_registry_hosts(guarded):
    refused(run_process("login", "127.0.0.1:99999", "-u", "u", "--password-stdin", input="p\n"),
            "invalid registry '127.0.0.1:99999': expected HOST[:PORT] with a port from 1 to 65535")
    refused(run_process("login", "bad host", "-u", "u", "--password-stdin", input="p\n"),
            "invalid registry 'bad host': expected HOST[:PORT] with a port from 1 to 65535")
    layout = image_layout(guarded.out.parent / "layout")
    refused(run_process("push", str(layout), "127.0.0.1:99999/x/y:t"),
            "invalid reference '127.0.0.1:99999/x/y:t': '127.0.0.1:99999' is not a valid registry host[:port]")
    refused(run_process("push", str(layout), "bad host/x/y:t"),
            "invalid reference 'bad host/x/y:t': 'bad host' is not a valid path component "
            "(lower-case letters and digits, joined by '.', '_', '__' or '-')")
    guarded.unchanged()


def test_registry_not_listening(guarded):
    """Said at once: a wrong port is not worth the retries a registry that stops answering gets."""
    host = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    login = run_process("login", host, "-u", "u", "--password-stdin", input="p\n")
    refused(login, login.stderr.strip().removeprefix("error: "))
    assert login.stderr == (f"error: {host} refused the connection (GET http://{host}/v2/): "
                            "no registry listens there\n")
    layout = image_layout(guarded.out.parent / "layout")
    push = run_process("push", str(layout), f"{host}/x/y:t")
    refused(push, push.stderr.strip().removeprefix("error: "))
    assert push.stderr.startswith(f"error: {host} refused the connection (") and "no registry listens" in push.stderr
    assert time.monotonic() - started < 10  # the two commands, without a retry's backoff
    guarded.unchanged()


# --- bad environment, missing directories, a full disk, a symlink loop ------------------------


@pytest.mark.parametrize("epoch", ["99999999999999999999", "-1", "abc"])
def test_bad_source_date_epoch(guarded, epoch):
    result = run_process("containerize", BENTO, "-o", str(guarded.out / "i.tar"), env={"SOURCE_DATE_EPOCH": epoch})
    refused(result, f"SOURCE_DATE_EPOCH must be a whole number of seconds up to 253402300799, not {epoch!r}")
    guarded.unchanged()


def test_export_into_a_missing_directory(guarded, ocibuild):
    refused(ocibuild("export", BENTO, "/missing/dir/x.tar", ok=False),
            "cannot write /missing/dir/x.tar: directory /missing/dir does not exist")
    guarded.unchanged()


def test_a_debian_lock_whose_hash_walks_out_of_the_cache(template, home, ocibuild, tmp_path):
    """A bento edited in the store: the lock's sha256 names the cached `.deb`, so a path there
    is refused before anything is created or downloaded."""
    shutil.copytree(template, home, symlinks=True)
    lock = home / "bentos" / "echo" / "1" / "env" / "debian" / "packages.lock"
    lines = lock.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.count(" ") == 5)
    fields = lines[first].split()
    fields[3] = "../../../../../../../.." + str(tmp_path / "escaped")
    lines[first] = " ".join(fields)
    lock.write_text("\n".join(lines) + "\n")
    guarded = Guard(home, tmp_path)
    result = ocibuild("containerize", BENTO, "-o", str(guarded.out / "img.tar"), ok=False)
    refused(result, f"bento {BENTO}, env/debian/packages.lock: the Debian lock's line {first + 1} is not a pinned "
                    f"package: {lines[first][:80]!r}")
    guarded.unchanged()
    assert not list(tmp_path.glob("escaped*"))


INDEX_OPTION = "    --extra-index-url http://127.0.0.1:9/simple"  # indented: read as a continuation


def _poison_python_lock(bento_dir: Path) -> int:
    """Append an index option to the bento's Python lock; the number of the line it is on."""
    lock = bento_dir / "env" / "python" / "requirements.lock.txt"
    lines = lock.read_text().splitlines() + [INDEX_OPTION]
    lock.write_text("\n".join(lines) + "\n")
    return len(lines)


def test_a_bento_archive_whose_python_lock_adds_an_index_is_refused(template, home, ocibuild, tmp_path):
    """uv reads every option of the lock it installs: one in an imported bento would make it take
    packages from another index. The archive is refused before anything is stored."""
    shutil.copytree(template, home, symlinks=True)
    staged = tmp_path / "echo-1"
    shutil.copytree(home / "bentos" / "echo" / "1", staged)
    number = _poison_python_lock(staged)
    archive = tmp_path / "poisoned.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staged, arcname=".")
    ocibuild("delete", BENTO, "-y")
    guarded = Guard(home, tmp_path)
    result = ocibuild("import", str(archive), ok=False)
    refused(result, f"refusing the bento: env/python/requirements.lock.txt: line {number} is neither a hash "
                    "nor a comment")
    guarded.unchanged()


def test_a_python_lock_edited_in_the_store_never_reaches_uv(template, home, ocibuild, tmp_path):
    shutil.copytree(template, home, symlinks=True)
    number = _poison_python_lock(home / "bentos" / "echo" / "1")
    guarded = Guard(home, tmp_path)
    result = ocibuild("containerize", BENTO, "-o", str(guarded.out / "img.tar"), ok=False)
    refused(result, f"bento {BENTO}, env/python/requirements.lock.txt: line {number} is neither a hash nor a comment")
    guarded.unchanged()


@pytest.mark.parametrize("transport", ["import", "oci-archive"])
def test_a_header_bomb_is_refused_unread(guarded, ocibuild, tmp_path, transport):
    """A 64 MiB PAX header in a few KiB of gzip: refused before it is read, whoever reads the tar."""
    bomb = header_bomb(tmp_path / "bomb.tar.gz", 64 << 20)
    if transport == "import":
        result = ocibuild("import", str(bomb), ok=False)
        line = f"cannot read {bomb}: refusing archive: a PAX header of {64 << 20} bytes at byte 0 (at most 1048576 are read)"
    else:  # an OCI archive is read uncompressed: the same header, 2 MiB on disk
        plain = tmp_path / "bomb.tar"
        plain.write_bytes(gzip.decompress(header_bomb(tmp_path / "small.tar.gz", 2 << 20).read_bytes()))
        result = ocibuild("containerize", BENTO, "--base", f"oci-archive:{plain}", "-o", str(guarded.out / "img.tar"),
                          ok=False)
        line = (f"{plain} is not a readable tar archive: refusing archive: a PAX header of {2 << 20} bytes at byte 0 "
                "(at most 1048576 are read)")
    refused(result, line)
    guarded.unchanged()


def test_symlink_loop_in_a_model_directory(guarded, ocibuild, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w")
    (model / "a").symlink_to("b")
    (model / "b").symlink_to("a")
    result = ocibuild("models", "import", str(model), "--name", "x", ok=False)
    refused(result, f"{model / 'a'}: a symlink loop; remove it from the model")
    guarded.unchanged()


# --- archive limits on the command line -------------------------------------------------------


def test_size_option_parses_binary_suffixes():
    from ocibuild.cli import Size

    size = Size()
    assert [size.convert(v, None, None) for v in ("1000", "2K", "3m", "4G", "1T", "5MiB")] == \
           [1000, 2 << 10, 3 << 20, 4 << 30, 1 << 40, 5 << 20]
    for bad in ("", "K", "-1", "1.5G", "0", "12Q"):
        with pytest.raises(Exception):
            size.convert(bad, None, None)


@pytest.mark.parametrize("flag,value,line", [
    ("--max-archive-members", "3", "{A}: refusing archive: it has more than 3 members (raise the limit with "
                                   "--max-archive-members)"),
    ("--max-archive-file-size", "1K", "{A}: refusing archive: 'files/weights.bin' is larger than 1 KiB (raise the limit "
                                      "with --max-archive-file-size)"),
    ("--max-archive-size", "2K", "{A}: refusing archive: its contents exceed 2 KiB at 'files/weights.bin' (raise the limit "
                                 "with --max-archive-size)"),
])
def test_archive_limits_refuse_then_admit(guarded, ocibuild, tmp_path, flag, value, line):
    """A model and a bento archive refused under a low limit are imported once it is raised."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(4096))
    (model / "a.txt").write_text("a")
    ocibuild("models", "import", str(model), "--name", "m")
    tag = json.loads(ocibuild("models", "list", "-o", "json").stdout)[0]["tag"]
    ocibuild("models", "export", tag, str(tmp_path / "m.tar.gz"))
    ocibuild("export", BENTO, str(tmp_path / "b.tar.gz"))
    (tmp_path / "b.tar.gz").write_bytes(_with_big_file(tmp_path / "b.tar.gz"))
    ocibuild("models", "delete", tag, "-y")
    ocibuild("delete", BENTO, "-y")
    guard = Guard(guarded.home, tmp_path / "again")
    refused(ocibuild("models", "import", str(tmp_path / "m.tar.gz"), flag, value, ok=False),
            line.replace("{A}", str(tmp_path / "m.tar.gz")))
    refused(ocibuild("import", str(tmp_path / "b.tar.gz"), flag, value, ok=False),
            line.replace("{A}", str(tmp_path / "b.tar.gz")))
    guard.unchanged()
    raised = {"--max-archive-members": "100", "--max-archive-file-size": "8K", "--max-archive-size": "1M"}[flag]
    assert "Imported model m:" in ocibuild("models", "import", str(tmp_path / "m.tar.gz"), flag, raised).stdout
    assert "Imported echo:1" in ocibuild("import", str(tmp_path / "b.tar.gz"), flag, raised).stdout


def _with_big_file(archive: Path) -> bytes:
    """The bento archive with a 4 KiB `files/weights.bin` first (a file its import ignores)."""
    import gzip

    members = []
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            members.append((m, tar.extractfile(m).read() if m.isfile() else None))
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as out:
        big = tarfile.TarInfo("files/weights.bin")
        big.size = 4096
        out.addfile(big, io.BytesIO(os.urandom(4096)))
        for m, data in members:
            out.addfile(m, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


# --- a full disk, a model gone from a bento, a SIGKILL -----------------------------------------


def leftovers(directory: Path) -> list[str]:
    return [n for n in os.listdir(directory) if ".ocibuild-tmp-" in n]


@pytest.mark.parametrize("fmt", ["archive", "oci-dir"])
def test_full_disk(guarded, ocibuild, tmp_path, fmt):
    need(os.geteuid() == 0, "mounting a small tmpfs needs root")
    full = tmp_path / "full"
    full.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(full)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        base = image_layout(tmp_path / "base", payload=3 << 20)  # does not fit in 1 MiB
        result = ocibuild("containerize", BENTO, "--base", f"oci-layout:{base}", "--format", fmt,
                          "-o", str(full / "out"), ok=False)
        refused(result, f"cannot write {full / 'out'}: No space left on device")
        assert os.listdir(full) == [], os.listdir(full)
        assert not os.listdir(guarded.home / "cache" / "tmp")
    finally:
        subprocess.run(["umount", str(full)], check=True)


def model_service(tmp_path: Path, home: Path) -> str:
    """Model `m` imported, and a bento built on it (the echo service with a model): its tag."""
    model = tmp_path / "weights"
    model.mkdir()
    (model / "w.bin").write_bytes(os.urandom(1024))
    env = {"OCIBUILD_HOME": str(home)}
    assert run_process("models", "import", str(model), "--name", "m", env=env).returncode == 0
    src = copy_service(ECHO, tmp_path / "echo-m")
    text = (src / "service.py").read_text().replace("class Echo:\n", "class EchoM:\n    weights = ocibuild.models.Model('m:latest')\n\n")
    (src / "service.py").write_text(text)
    built = run_process("build", str(src), "--version", "m1", env=env)
    assert built.returncode == 0, built.stderr
    return built.stdout.split()[-1]


def layer_of(layout: Path, created_by: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_bytes())
    config = json.loads((layout / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_bytes())
    found = [l["digest"] for l, h in zip(manifest["layers"], config["history"]) if h["created_by"].startswith(created_by)]
    assert len(found) == 1, config["history"]
    return found[0]


def test_model_removed_from_a_bento(guarded, ocibuild, tmp_path):
    tag = model_service(tmp_path, guarded.home)
    bento = json.loads(ocibuild("get", tag, "-o", "json").stdout)
    base = image_layout(tmp_path / "base")
    [stored] = (guarded.home / "bentos").glob(tag.replace(":", "/") + "/models/m/*/files")
    version = stored.parent.name
    aside = tmp_path / "aside"
    shutil.move(stored, aside)
    result = ocibuild("containerize", tag, "--base", f"oci-layout:{base}", "--format", "oci-dir",
                      "-o", str(guarded.out / "img"), ok=False)
    assert bento["models"][0]["version"] == version
    line = result.stderr.splitlines()[-1].removeprefix("error: ")
    refused(result, line)
    assert line.startswith(f"model m:{version} in bento {tag} no longer matches its digest (")
    assert line.endswith(f", pinned {bento['models'][0]['digest']}): rebuild the bento")
    assert os.listdir(guarded.out) == [] and not os.listdir(guarded.home / "cache" / "tmp")
    blobs_after_failure = set(os.listdir(guarded.home / "cache" / "blobs" / "sha256"))
    shutil.move(aside, stored)
    ocibuild("containerize", tag, "--base", f"oci-layout:{base}", "--format", "oci-dir",
             "-o", str(guarded.out / "img"))
    model_layer = layer_of(guarded.out / "img", "ocibuild: model m:")
    assert model_layer[7:] not in blobs_after_failure  # nothing was cached for the missing model


def test_sigkill_while_writing(guarded, tmp_path):
    base = tmp_path / "base"
    payload = tmp_path / "payload.bin"
    with open(payload, "wb") as f:
        f.truncate(256 << 20)  # sparse: a big layer made fast
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        tar.add(payload, arcname="payload.bin")
    payload.unlink()
    sha = hashlib.sha256()
    with open(layer, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    digest = "sha256:" + sha.hexdigest()
    (base / "blobs" / "sha256").mkdir(parents=True)
    shutil.move(layer, base / "blobs" / "sha256" / digest[7:])
    size = (base / "blobs" / "sha256" / digest[7:]).stat().st_size
    layer_descriptor = {"mediaType": mediatypes.LAYER, "digest": digest, "size": size}
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [digest]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.MANIFEST, "layers": [layer_descriptor],
                           "config": descriptor(base, mediatypes.CONFIG, config)}).encode()
    write_layout(base, {"schemaVersion": 2, "manifests": [descriptor(base, mediatypes.MANIFEST, manifest)]})


    out = guarded.out / "OUT.tar"
    args = [sys.executable, "-m", "ocibuild", "containerize", BENTO, "--base", f"oci-layout:{base}",
            "--compression", "none", "-o", str(out)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        temps = [guarded.out / n for n in leftovers(guarded.out)]
        if temps and sum(p.stat().st_size for p in temps if p.exists()) > (8 << 20):
            break
        time.sleep(0.005)
    assert process.poll() is None, "containerize ended before it could be killed: " + process.stderr.read().decode()
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists()
    assert leftovers(guarded.out)  # what the dead writer left...
    again = run_process("containerize", BENTO, "--base", f"oci-layout:{base}", "--compression", "none",
                        "-o", str(guarded.out / "other.tar"))
    assert again.returncode == 0, again.stderr
    assert leftovers(guarded.out) == []  # ...is swept by the next writer
    assert not out.exists() and (guarded.out / "other.tar").is_file()



# --- valid images by hand, pushed to a real registry ------------------------------------------


def skopeo_raw(host: str, repository: str) -> bytes:
    need(shutil.which("skopeo") is not None, "skopeo is not installed (run scripts/setup.sh)")
    out = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{host}/{repository}"],
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


def test_push_arm64_image(plain_registry, ocibuild, tmp_path):
    layout = image_layout(tmp_path / "arm64", arch="arm64")
    digest = _digest_of(layout)
    pushed = ocibuild("push", str(layout), f"{plain_registry.host}/hand/arm:1")
    assert digest in pushed.stdout
    served = skopeo_raw(plain_registry.host, "hand/arm:1")
    assert served == (layout / "blobs" / "sha256" / digest[7:]).read_bytes()
    config = json.loads(served)["config"]["digest"]
    assert json.loads((layout / "blobs" / "sha256" / config[7:]).read_bytes())["architecture"] == "arm64"


def test_push_index_layout(plain_registry, ocibuild, tmp_path):
    root = tmp_path / "index"
    children = [descriptor(root, mediatypes.MANIFEST, image_manifest(root, arch),
                           platform={"architecture": arch, "os": "linux"}) for arch in ("amd64", "arm64")]
    index = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.INDEX, "manifests": children}).encode()
    write_layout(root, {"schemaVersion": 2, "manifests": [descriptor(root, mediatypes.INDEX, index)]})
    ocibuild("push", str(root), f"{plain_registry.host}/hand/multi:1")
    assert skopeo_raw(plain_registry.host, "hand/multi:1") == index
    for child in children:
        served = skopeo_raw(plain_registry.host, f"hand/multi@{child['digest']}")
        assert served == (root / "blobs" / "sha256" / child["digest"][7:]).read_bytes()
