"""Push and pull against the real distribution registry, with auth, faults and a mirror."""

import json
import shutil
import subprocess

import pytest

from ocibuild.bento.build import build_bento
from ocibuild.bento.store import BentoStore
from ocibuild.store.blobs import BlobStore
from ocibuild.oci.platform import DEFAULT_PLATFORM
from ocibuild.registry.auth import Credential, Keychain, store_login
from ocibuild.registry.config import RegistryConfig
from ocibuild.registry.pull import pull_image
from ocibuild.registry.push import push
from ocibuild.oci.reference import Reference
from ocibuild.registry.session import Registries
from ocibuild.errors import AuthError, RegistryError
from ocibuild.registry.transport import RetryPolicy
from tests.builds import containerize, write
from tests.conftest import copy_service, run_process
from tests.registry.conftest import USERS
from tests.registry.fixtures import FaultProxy

FAST = RetryPolicy(attempts=8, backoff=0.01, max_wait=0.05, timeout=2.0, deadline=60.0)


def pull_base(ref, regs, blobs, platform):
    """The image `ref` names for `platform`, its layers still in the registry."""
    return pull_image(ref, regs, blobs, platform)[0]


def registries(tmp_path, credential: Credential | None = None, retry=RetryPolicy(), chunk_size=64 << 20,
               **config) -> Registries:
    files = []
    if credential:
        path = tmp_path / "auth.json"
        for host in config.pop("login_hosts", []):
            store_login(host, credential, path)
        files = [path]
    return Registries(RegistryConfig(**config), Keychain(files), retry, chunk_size)


def skopeo_digest(ref: str) -> str:
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["Digest"]


def test_push_verifies_with_skopeo_and_runs_in_docker(example, plain_registry, docker_engine, tmp_path):
    ref = Reference.parse(f"{plain_registry.host}/ocibuild/summarization:v1")
    report = push(example.image, ref, registries(tmp_path), example.cache)
    assert report.digest == example.image.digest
    assert len(report.uploaded) == len(example.image.layers) + 1 and not report.skipped
    assert skopeo_digest(str(ref)) == example.image.digest
    pulled = subprocess.run(["docker", "pull", str(ref)], capture_output=True, text=True)
    assert pulled.returncode == 0, pulled.stderr
    run = subprocess.run(["docker", "run", "--rm", "--network", "host", str(ref), "python3", "-c",
                          "import numpy; print('ok')"], capture_output=True, text=True)
    assert run.stdout.strip() == "ok", run.stderr
    subprocess.run(["docker", "rmi", str(ref)], capture_output=True)


def test_push_after_an_edit_uploads_only_the_new_layer_and_config(example, plain_registry, tmp_path):
    regs = registries(tmp_path)
    ref = Reference.parse(f"{plain_registry.host}/ocibuild/edits:v1")
    push(example.image, ref, regs, example.cache)
    src = copy_service(example.bento.path / "src", tmp_path / "src")
    (src / "service.py").write_text((src / "service.py").read_text() + "\n# edited\n")
    edited = containerize(example, bento=build_bento(src, BentoStore(example.home)))
    before = regs.transport(plain_registry.host).stats.bytes_sent
    report = push(edited, ref.__class__(ref.registry, ref.repository, "v2"), regs, example.cache)
    assert sorted(report.uploaded) == sorted([edited.layers[-1].descriptor.digest, edited.config_descriptor().digest])
    assert len(report.skipped) == len(edited.layers) - 1
    sent = regs.transport(plain_registry.host).stats.bytes_sent - before
    assert sent < edited.layers[-1].descriptor.size + 64 * 1024  # the top layer, the config and the manifest


def test_a_digest_in_the_destination_must_be_what_is_pushed(example, plain_registry, tmp_path):
    """`push SRC REG/REPO@sha256:...` is a claim: another image is refused before any request."""
    regs = registries(tmp_path)
    other = "sha256:" + "a" * 64
    with pytest.raises(RegistryError, match=f"names {other}, but what would be pushed is {example.image.digest}"):
        push(example.image, Reference.parse(f"{plain_registry.host}/ocibuild/pinned@{other}"), regs, example.cache)
    assert regs.transport(plain_registry.host).stats.requests == 0
    report = push(example.image, Reference.parse(f"{plain_registry.host}/ocibuild/pinned@{example.image.digest}"),
                  regs, example.cache)
    assert report.digest == example.image.digest


def test_an_interrupted_push_run_again_uploads_nothing_twice(example, plain_registry, tmp_path):
    ref = f"{plain_registry.host}/ocibuild/interrupted:v1"
    proxy = FaultProxy(plain_registry.host, ["ok"] * 12 + ["500"] * 500)
    try:
        # a 500 is an answer: the registry kept failing, it did not fall silent
        with pytest.raises(RegistryError, match=rf"^{proxy.host} kept failing: .*: HTTP 500 \(tried 2 times\)$"):
            push(example.image, Reference.parse(ref.replace(plain_registry.host, proxy.host)),
                 registries(tmp_path, retry=RetryPolicy(attempts=2, backoff=0.01)), example.cache, workers=1)
    finally:
        proxy.stop()
    arrived = {path.rsplit("/", 1)[1].split("?")[0] for method, path, fault in proxy.seen
               if fault == "ok" and method == "PUT" and "/blobs/uploads/" in path}
    arrived = {d for d in arrived if d.startswith("sha256:")} | {
        path.split("digest=")[1] for method, path, fault in proxy.seen if fault == "ok" and "digest=" in path}
    assert arrived, "the first push should have stored some blobs"
    report = push(example.image, Reference.parse(ref), registries(tmp_path), example.cache)
    assert not set(report.uploaded) & arrived
    assert set(report.skipped) >= arrived
    assert skopeo_digest(ref) == example.image.digest


def test_push_and_pull_survive_resets_errors_throttling_and_stalls(example, plain_registry, tmp_path):
    proxy = FaultProxy(plain_registry.host, ["ok", "reset", "ok", "500", "ok", "429", "ok", "stall"], stall=3.0)
    try:
        through = Reference.parse(f"{proxy.host}/ocibuild/faulty:v1")
        regs = registries(tmp_path, retry=FAST, chunk_size=16 << 20)
        report = push(example.image, through, regs, example.cache)
        assert report.digest == example.image.digest
        cache = BlobStore(tmp_path / "fresh-cache")
        base = pull_base(through, regs, cache, DEFAULT_PLATFORM)
        [layer.path() for layer in base.layers]
        assert all(layer.path().is_file() for layer in base.layers)
        assert [l.diff_id for l in base.layers] == [l.diff_id for l in example.image.layers]
        assert proxy.faults_served() >= {"reset", "500", "429", "stall"}
        patches = [fault for method, _, fault in proxy.seen if method == "PATCH"]
        assert len(patches) >= 5 and set(patches) - {"ok"}  # the 66 MB base layer went in chunks, some hit faults
    finally:
        proxy.stop()
    assert skopeo_digest(f"{plain_registry.host}/ocibuild/faulty:v1") == example.image.digest


def test_a_registry_that_lies_about_a_digest_is_refused(example, plain_registry, tmp_path):
    ref = Reference.parse(f"{plain_registry.host}/ocibuild/lies:v1")
    push(example.image, ref, registries(tmp_path), example.cache)
    proxy = FaultProxy(plain_registry.host, ["ok"], corrupt_blobs=True)
    try:
        cache = BlobStore(tmp_path / "cache")
        with pytest.raises(RegistryError, match="does not match its digest"):
            base = pull_base(ref.in_registry(proxy.host), registries(tmp_path), cache, DEFAULT_PLATFORM)
            [layer.path() for layer in base.layers]
        assert not any(p.is_file() for p in (cache.root / "blobs").rglob("*"))
    finally:
        proxy.stop()


def test_missing_repository_is_a_clear_error(plain_registry, tmp_path):
    with pytest.raises(RegistryError, match=r"cannot pull .*nothing/here:v1.*HTTP 404 (NAME|MANIFEST)_UNKNOWN"):
        pull_base(Reference.parse(f"{plain_registry.host}/nothing/here:v1"), registries(tmp_path),
                  BlobStore(tmp_path / "c"), DEFAULT_PLATFORM)


def test_basic_auth(example, basic_registry, tmp_path):
    ref = Reference.parse(f"{basic_registry.host}/team/app:v1")
    with pytest.raises(AuthError, match=f"{basic_registry.host} requires credentials"):
        push(example.image, ref, registries(tmp_path), example.cache)
    wrong = registries(tmp_path, Credential("alice", "nope"), login_hosts=[basic_registry.host])
    with pytest.raises(AuthError, match=rf"{basic_registry.host} denied .*team/app.* as 'alice': HTTP 401") as err:
        push(example.image, ref, wrong, example.cache)
    assert "nope" not in str(err.value)
    right = registries(tmp_path, Credential("alice", USERS["alice"]), login_hosts=[basic_registry.host])
    assert push(example.image, ref, right, example.cache).digest == example.image.digest


def test_token_auth_scopes_and_refusals(example, token_registry, tmp_path):
    host = token_registry.host
    ref = Reference.parse(f"{host}/team/tokened:v1")
    alice = registries(tmp_path, Credential("alice", USERS["alice"]), login_hosts=[host])
    assert push(example.image, ref, alice, example.cache).digest == example.image.digest
    # anonymous: the token server grants pull only
    anonymous = registries(tmp_path)
    base = pull_base(ref, anonymous, BlobStore(tmp_path / "c"), DEFAULT_PLATFORM)
    assert base.digest == example.image.digest
    with pytest.raises(AuthError, match=rf"{host} denied .*team/tokened.*\(anonymous\): HTTP 401"):
        push(example.image, Reference.parse(f"{host}/team/tokened:v2"), anonymous, example.cache)
    wrong = registries(tmp_path / "w", Credential("alice", "bad-password"), login_hosts=[host])
    with pytest.raises(AuthError, match="the token service refused user 'alice'") as err:
        push(example.image, ref, wrong, example.cache)
    assert "bad-password" not in str(err.value)
    alice_scopes = [r["scope"] for r in token_registry.tokens.requests if r["user"] == "alice"]
    assert all("repository:team/tokened:pull,push" in s for s in alice_scopes)  # asked for push explicitly
    anonymous_scopes = [r["scope"] for r in token_registry.tokens.requests if r["user"] is None]
    assert ["repository:team/tokened:pull"] in anonymous_scopes  # a pull token for the pull


def test_login_logout_and_push_via_the_cli(example, basic_registry, tmp_path):
    env = {"OCIBUILD_HOME": str(tmp_path / "home"), "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}
    host = basic_registry.host
    nameless = run_process("login", host, "--password-stdin", input="hunter2secret\n", env=env)
    assert nameless.returncode == 2 and "--password-stdin needs --username" in nameless.stderr
    assert "hunter2secret" not in nameless.stdout + nameless.stderr  # not read as the name, nor printed
    bad = run_process("login", host, "-u", "alice", "--password-stdin", input="wrong\n", env=env)
    assert bad.returncode == 1 and "denied log in as 'alice'" in bad.stderr and "wrong" not in bad.stderr
    assert not (tmp_path / "auth.json").exists()
    good = run_process("login", host, "-u", "alice", "--password-stdin", input=USERS["alice"] + "\n", env=env)
    assert good.returncode == 0, good.stderr
    assert host in json.loads((tmp_path / "auth.json").read_text())["auths"]
    layout = write(example.image, tmp_path / "layout", "oci-dir")
    pushed = run_process("push", str(layout), f"{host}/cli/app:v1", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert f"{host}/cli/app@{example.image.digest}" in pushed.stdout
    assert run_process("logout", host, env=env).returncode == 0
    again = run_process("push", str(layout), f"{host}/cli/app:v2", env=env)
    assert again.returncode == 1 and "requires credentials" in again.stderr


def test_base_from_a_docker_io_mirror_is_pinned_and_mounted(example, plain_registry, python_base, docker_engine, tmp_path):
    host = plain_registry.host
    env = {"OCIBUILD_HOME": str(tmp_path / "home"), "OCIBUILD_REGISTRY_MIRRORS": f"docker.io={host}",
           "DOCKER_CONFIG": str(tmp_path / "docker")}
    layout = python_base.removeprefix("oci-layout:").rsplit(":", 1)[0]
    publisher = {**env, "OCIBUILD_HOME": str(tmp_path / "publisher")}  # the builder's cache stays without it
    assert run_process("push", layout, f"{host}/library/python:3.11-slim", env=publisher).returncode == 0
    src = copy_service(example.bento.path / "src", tmp_path / "svc")
    (src / "service.py").write_text((src / "service.py").read_text().replace(
        'PythonImage(python_version="3.11")', 'PythonImage(python_version="3.11", base_image="python:3.11-slim")'))
    shutil.copytree(example.home / "models", tmp_path / "home" / "models")
    built = run_process("build", str(src), "--version", "1", env=env)
    assert built.returncode == 0, built.stderr
    info = json.loads(run_process("get", "summarization:1", "-o", "json", env=env).stdout)
    assert info["base"]["reference"] == "docker.io/library/python:3.11-slim"
    assert info["base"]["digest"] == skopeo_digest(f"{host}/library/python:3.11-slim")
    pushed = run_process("containerize", "summarization:1", "--push", f"{host}/apps/summarization:1", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert "1 mounted" in pushed.stderr  # the base layer, never downloaded
    base_layer = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false",
                                            f"docker://{host}/library/python:3.11-slim"],
                                           capture_output=True, text=True).stdout)["Layers"][0]
    assert not (tmp_path / "home" / "cache" / "blobs" / "sha256" / base_layer.removeprefix("sha256:")).exists()
    archive = run_process("containerize", "summarization:1", "-o", str(tmp_path / "s.tar"), env=env)
    assert archive.returncode == 0, archive.stderr  # a local sink downloads the base layer
    loaded = subprocess.run(["docker", "load", "-i", str(tmp_path / "s.tar")], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    run = subprocess.run(["docker", "run", "--rm", "--network", "host", "summarization:1", "python3", "-c", "print(1)"],
                         capture_output=True, text=True)
    assert run.stdout.strip() == "1", run.stderr
    subprocess.run(["docker", "rmi", "summarization:1"], capture_output=True)


def test_pull_accepts_docker_v2_manifests_and_picks_the_platform_from_an_index(example, plain_registry, tmp_path):
    host = plain_registry.host
    layout = write(example.image, tmp_path / "layout", "oci-dir")
    copied = subprocess.run(["skopeo", "copy", "--format", "v2s2", "--dest-tls-verify=false", f"oci:{layout}:test",
                             f"docker://{host}/formats/app:v2s2"], capture_output=True, text=True)
    assert copied.returncode == 0, copied.stderr
    regs = registries(tmp_path)
    v2 = pull_base(Reference.parse(f"{host}/formats/app:v2s2"), regs, BlobStore(tmp_path / "c1"), DEFAULT_PLATFORM)
    assert [l.diff_id for l in v2.layers] == [l.diff_id for l in example.image.layers]
    assert json.loads(regs.repository(host, "formats/app").manifest("v2s2")[0])["mediaType"].startswith(
        "application/vnd.docker.distribution.manifest.v2")
    # an index naming the image for linux/amd64 only
    repo = regs.repository(host, "formats/app")
    push(example.image, Reference.parse(f"{host}/formats/app:single"), regs, example.cache)
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {**example.image.descriptor().to_json(), "platform": {"os": "linux", "architecture": "amd64"}}]}
    repo.put_manifest("multi", json.dumps(index).encode(), index["mediaType"])
    chosen = pull_base(Reference.parse(f"{host}/formats/app:multi"), regs, BlobStore(tmp_path / "c2"), DEFAULT_PLATFORM)
    assert [l.descriptor.digest for l in chosen.layers] == [l.descriptor.digest for l in example.image.layers]
    from ocibuild.errors import ImageError
    from ocibuild.oci.platform import Platform
    with pytest.raises(ImageError, match="has no image for linux/arm64 .it has linux/amd64."):
        pull_base(Reference.parse(f"{host}/formats/app:multi"), regs, BlobStore(tmp_path / "c3"),
                  Platform.parse("linux/arm64"))


def test_a_malformed_referrers_tag_is_one_error_not_a_traceback(tmp_path):
    """The `sha256-<hex>` tag is the registry's answer, merged into what a push writes back: each
    entry is checked as a descriptor. A stand-in registry on loopback serves the tag."""
    import http.server
    import threading

    from ocibuild.errors import ImageError
    from ocibuild.oci.digest import Digest
    from ocibuild.registry.referrers import referrers_tag, tagged_referrers

    subject = Digest.of(b"subject")
    good = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": str(Digest.of(b"sbom")), "size": 5,
            "artifactType": "application/spdx+json"}
    served = {"body": b""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            found = self.path == f"/v2/r/manifests/{referrers_tag(subject)}"
            body = served["body"] if found else b""
            self.send_response(200 if found or self.path == "/v2/" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        repo = Registries(RegistryConfig(), Keychain([])).repository(f"127.0.0.1:{server.server_address[1]}", "r")
        served["body"] = json.dumps({"schemaVersion": 2, "manifests": [good]}).encode()
        assert tagged_referrers(repo, subject) == [good]
        for entry in ({**good, "digest": ["sha256:x"]}, "not a descriptor", {**good, "size": -1}):
            served["body"] = json.dumps({"schemaVersion": 2, "manifests": [good, entry]}).encode()
            with pytest.raises(ImageError, match=f"the referrers index of {subject} in r, entry 1"):
                tagged_referrers(repo, subject)
    finally:
        server.shutdown()


def test_a_missing_referrers_tag_leaves_its_connection_for_the_next_request(plain_registry, tmp_path):
    """The fallback tag is read on every push to a registry without the referrers API, and is
    missing on the first: its 404 answer is read to the end, so the next request reuses the
    connection (a new TLS handshake per push, on a remote registry) rather than opening one."""
    from ocibuild.oci.digest import Digest
    from ocibuild.registry.referrers import tagged_referrers

    proxy = FaultProxy(plain_registry.host, ["ok"])
    try:
        repo = registries(tmp_path).repository(proxy.host, "ocibuild/no-referrers")
        for _ in range(4):
            assert tagged_referrers(repo, Digest("sha256:" + "0" * 64)) == []
    finally:
        proxy.stop()
    assert len(proxy.seen) == 4 and proxy.connections == 1
