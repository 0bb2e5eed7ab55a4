"""`ocibuild serve` on the host: a real uvicorn server on loopback, driven over HTTP."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import ECHO, free_port


@pytest.fixture
def server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ocibuild", "serve", str(ECHO), "--port", str(port),
                             "--host", "127.0.0.1"], env={**os.environ, "ECHO_TOKEN": "t"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(f"{url}/healthz", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"the server never answered on {url}:\n{proc.communicate()[0]}")
    yield url, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def post(url, body, **kwargs):
    return requests.post(url, data=body, headers={"content-type": "application/json"}, timeout=10, **kwargs)


def answers_pong(url: str) -> None:
    """The service at `url` answers "pong", once it has started (10 s at most)."""
    for _ in range(100):
        try:
            assert post(url, "{}").json() == "pong"
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    pytest.fail(f"nothing answered at {url}")


def test_endpoints_answer(server):
    url, _ = server
    assert requests.post(f"{url}/echo", json={"text": "hi", "times": 2}).json() == ">hi >hi"
    assert requests.post(f"{url}/mean", json={"values": [1, 2.5]}).json() == 1.75
    assert requests.post(f"{url}/tags", json={"labels": {"b": "2", "a": "1"}}).json() == ["a=1", "b=2"]
    for probe in ("healthz", "livez", "readyz"):
        assert requests.get(f"{url}/{probe}").status_code == 200
    assert set(requests.get(f"{url}/docs.json").json()["paths"]) >= {"/echo", "/mean", "/tags"}


@pytest.mark.parametrize("body, message", [
    ("not json", "not valid JSON"),
    ('{"text": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ("[1, 2]", "must be a JSON object"),
    ("{}", "missing field: text"),
    ('{"text": 1}', "text: expected string"),
    ('{"text": "a", "times": "2"}', "times: expected integer"),
    ('{"text": "a", "extra": 1}', "unknown field(s): extra"),
])
def test_bad_input_is_a_400_never_a_500(server, body, message):
    url, _ = server
    response = post(f"{url}/echo", body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_a_number_too_large_for_a_float_is_a_400(server):
    url, _ = server
    response = post(f"{url}/mean", '{"values": [1' + "0" * 400 + "]}")
    assert response.status_code == 400 and "is too large for a float" in response.json()["error"]


def test_service_failure_is_a_500_and_routing_errors(server):
    url, _ = server
    assert post(f"{url}/boom", "{}").status_code == 500
    assert requests.get(f"{url}/echo").status_code == 405
    assert post(f"{url}/nothing", "{}").status_code == 404


def test_metrics_count_and_time_requests(server):
    url, _ = server
    requests.post(f"{url}/echo", json={"text": "x"})
    post(f"{url}/echo", "bad")
    text = requests.get(f"{url}/metrics").text
    assert 'ocibuild_requests_total{endpoint="/echo",status="200"} 1' in text
    assert 'ocibuild_requests_total{endpoint="/echo",status="400"} 1' in text
    assert 'ocibuild_request_duration_seconds_count{endpoint="/echo"} 2' in text
    assert '# TYPE ocibuild_request_duration_seconds histogram' in text


def test_sigterm_drains_and_exits_zero(server):
    url, proc = server
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def test_refuses_to_start_without_required_env():
    env = {k: v for k, v in os.environ.items() if k != "ECHO_TOKEN"}
    result = subprocess.run([sys.executable, "-m", "ocibuild", "serve", str(ECHO), "--port", str(free_port())],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip() == "error: required environment variable(s) not set: ECHO_TOKEN"


def test_serve_a_bento_by_tag(home, tmp_path):
    from tests.conftest import copy_service, run_process

    assert run_process("build", str(copy_service(ECHO, tmp_path / "echo")), "--version", "7").returncode == 0
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ocibuild", "serve", "echo:7", "--port", str(port), "--host", "127.0.0.1"],
                            env={**os.environ, "ECHO_TOKEN": "t"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                response = requests.post(f"http://127.0.0.1:{port}/echo", json={"text": "tag"}, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            pytest.fail(f"serve echo:7 never answered on port {port}")
        assert response.json() == ">tag"
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


@pytest.mark.parametrize(("entry_point", "message"), [
    ("missing_module_zz:Svc", "importing missing_module_zz from {src}: ModuleNotFoundError: No module named 'missing_module_zz'"),
    ("service_importing_zz:Svc", "service_importing_zz.py:2: ModuleNotFoundError: No module named 'no_such_dependency_zz'"),
    ("service_raising_zz:Svc", "service_raising_zz.py:3: KeyError: 'MODEL_BUCKET'"),
])
def test_a_service_that_cannot_be_imported_is_one_error(tmp_path, monkeypatch, entry_point, message):
    """Named by the service's own file and line, even from inside the service directory, where
    importlib's `<frozen ...>` frames would otherwise resolve to paths inside it."""
    from ocibuild.errors import ServiceLoadError
    from ocibuild.runtime.server import load

    (tmp_path / "service_importing_zz.py").write_text("import os\nimport no_such_dependency_zz\n")
    (tmp_path / "service_raising_zz.py").write_text("import os\n\nBUCKET = os.environ['MODEL_BUCKET']\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(ServiceLoadError) as raised:
        load(tmp_path, entry_point)
    assert str(raised.value) == message.format(src=tmp_path.resolve())


FAILING_INIT = """
import ocibuild


def connect():
    raise ConnectionError("no database at db:5432")


@ocibuild.service(image=ocibuild.images.PythonImage(python_version="3.11"))
class Reports:
    def __init__(self):
        self.db = connect()

    @ocibuild.api
    def ping(self) -> str:
        return "pong"
"""


def test_a_service_whose_init_fails_is_one_line_naming_its_code(tmp_path):
    """The image's entrypoint and `ocibuild serve` alike: the innermost line of the user's code,
    exit 1, no traceback; `--verbose` shows the user's traceback."""
    (tmp_path / "service.py").write_text(FAILING_INIT)
    expected = "error: service.py:6: ConnectionError: no database at db:5432"
    env = {**os.environ, "OCIBUILD_SERVICE": "service:Reports", "OCIBUILD_SRC": str(tmp_path)}
    image = subprocess.run([sys.executable, "-m", "ocibuild.runtime.entrypoint", "serve", "--port", str(free_port())],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (image.returncode, image.stderr.strip()) == (1, expected)
    cli = subprocess.run([sys.executable, "-m", "ocibuild", "serve", str(tmp_path), "--port", str(free_port())],
                         capture_output=True, text=True, timeout=60)
    assert (cli.returncode, cli.stderr.strip()) == (1, expected)
    verbose = subprocess.run([sys.executable, "-m", "ocibuild.runtime.entrypoint", "serve", "--verbose"],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert verbose.returncode != 0
    assert "Traceback" in verbose.stderr and 'service.py", line 12, in __init__' in verbose.stderr


def test_a_service_left_in_a_reference_cycle_is_finalized_when_serve_stops(tmp_path):
    """`serve` runs the user's code, so its process ends with the interpreter's usual collections:
    a file the service left open, in an object kept only by a cycle, is flushed on SIGTERM (the
    other commands skip them: tests/test_startup.py)."""
    (tmp_path / "service.py").write_text(f'''
import ocibuild

@ocibuild.service(image=ocibuild.images.PythonImage(python_version="3.11"))
class Audit:
    def __init__(self):
        self.me = self  # a cycle: only the collector frees it
        self.log = open({str(tmp_path / "audit.log")!r}, "w")
        self.log.write("started\\n")

    @ocibuild.api
    def ping(self) -> str:
        self.log.write("ping\\n")
        return "pong"
''')
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ocibuild", "serve", str(tmp_path), "--port", str(port),
                             "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        answers_pong(f"http://127.0.0.1:{port}/ping")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert (tmp_path / "audit.log").read_text() == "started\nping\n"


def test_a_port_that_cannot_be_listened_on_is_one_line(tmp_path):
    """Out of range (the flag or $PORT), in use, or a host that is no address: one `error:` line,
    where uvicorn printed its log and a traceback."""
    import socket

    (tmp_path / "service.py").write_text(FAILING_INIT.replace("        self.db = connect()\n", "        pass\n"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        cases = [
            (["--port", "99999"], {}, "error: port '99999' is not a TCP port (0-65535)"),
            (["--port", str(busy), "--host", "127.0.0.1"], {}, f"error: cannot listen on 127.0.0.1:{busy}: Address already in use"),
            (["--port", str(free_port()), "--host", "999.1.1.1"], {}, "error: cannot listen on 999.1.1.1:"),
            ([], {"PORT": "3000abc"}, "error: port '3000abc' is not a TCP port (0-65535)"),
        ]
        for args, env, expected in cases:
            result = subprocess.run([sys.executable, "-m", "ocibuild", "serve", str(tmp_path), *args],
                                    env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
            assert result.returncode == 1 and result.stderr.startswith(expected), (args, result.stderr)
            assert len(result.stderr.splitlines()) == 1, result.stderr


def test_serve_listens_on_every_address_of_its_host_and_says_where(tmp_path):
    """`--host ""` is every interface, IPv4 and IPv6, as uvicorn bound them; port 0 is one free
    port for all; the log names the addresses, since uvicorn does not when given the sockets."""
    import queue
    import re
    import threading

    (tmp_path / "service.py").write_text(FAILING_INIT.replace("        self.db = connect()\n", "        pass\n"))
    proc = subprocess.Popen([sys.executable, "-m", "ocibuild", "serve", str(tmp_path), "--port", "0", "--host", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
        line = ""
        while "Listening on" not in line:
            line = lines.get(timeout=60)  # a server that never says where it listens fails, not hangs
        assert re.search(r"Listening on http://0\.0\.0\.0:(\d+), http://\[::\]:\1 ", line), line
        port = re.search(r":(\d+)", line).group(1)
        for host in ("127.0.0.1", "[::1]"):
            answers_pong(f"http://{host}:{port}/ping")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


BIND_WITHOUT_IPV6 = """set -e
mount --bind "$1" /etc/hosts
ip link set lo up
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
echo 1 > /proc/sys/net/ipv6/conf/lo/disable_ipv6
exec "$2" -c 'from ocibuild.runtime.server import bind, listening; print(listening(bind("localhost", 0)))'
"""


def test_a_host_name_with_an_address_this_machine_cannot_use_serves_on_the_others(tmp_path):
    """`::1 localhost` in the hosts file of a machine without IPv6 (RHEL's default file): the
    IPv4 address is served, as before ocibuild bound the sockets itself. In a network and mount
    namespace of the test's own, where IPv6 is off and the hosts file is the test's."""
    import shutil

    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs root, unshare and ip for a network namespace without IPv6")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n::1 localhost\n")
    script = tmp_path / "bind.sh"
    script.write_text(BIND_WITHOUT_IPV6)
    result = subprocess.run(["unshare", "-m", "-n", "sh", str(script), str(hosts), sys.executable],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+\n", result.stdout), result.stdout
