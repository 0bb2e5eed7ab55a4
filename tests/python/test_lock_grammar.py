"""What a Python lock may hold when it comes from elsewhere (a bento archive, a registry cache):
hashed pins only, since uv obeys every option a requirements file holds."""

import pytest

from ocibuild.python.lock import lock_problem

H = "--hash=sha256:" + "a" * 64


@pytest.mark.parametrize("lock", [
    f"numpy==2.0.0 \\\n    {H} \\\n    {H}\n    # via -r requirements.txt\n",
    f"numpy==2.0.0 {H} {H}\n",
    f"numpy[extra]==2.0.0 ; python_version >= '3.9' {H}\n\n# resolved by uv\n",
    f"# locked in uv.lock, used as given\nsix==1.16.0 {H}\n# resolved by uv\n",
    f"numpy==2.0.0 \\\n    --hash=sha512:{'b' * 128}\n",
    f"numpy==2.0.0 \\\n    --hash=md5:{'c' * 32}\n",  # uv writes what an index offers: some offer md5 only
    f"foo @ https://files.example/foo-1.0-py3-none-any.whl {H}\n",  # a hashed requirements file's URL pin
])
def test_what_uv_and_locked_inputs_write_is_accepted(lock):
    assert lock_problem(lock) is None


@pytest.mark.parametrize("lock, problem", [
    # an index option hidden as a continuation, as its own line, or on an entry's line
    (f"numpy==2.0.0 \\\n    {H} \\\n    --extra-index-url http://127.0.0.1:1/simple\n", "line 3 is neither a hash"),
    (f"--index-url http://127.0.0.1:1/simple\nnumpy==2.0.0 {H}\n", "line 1 is not a pinned requirement"),
    (f"numpy==2.0.0 {H} --extra-index-url=http://127.0.0.1:1/simple\n", "numpy has an option other than --hash"),
    (f"numpy==2.0.0 {H} --config-settings=x=y\n", "numpy has an option other than --hash"),
    # files and builds: requirements or constraints read from the host, editables, URLs
    ("-r /etc/passwd\n", "line 1 is not a pinned requirement"),
    (f"numpy==2.0.0 {H}\n    -c /etc/passwd\n", "line 2 is neither a hash"),
    ("-e .\n", "line 1 is not a pinned requirement"),
    (f"numpy @ file:///etc/numpy.whl {H}\n", "numpy is not pinned to one version or to an http(s) URL"),
    (f"numpy @ git+https://127.0.0.1:1/numpy {H}\n", "numpy is not pinned to one version or to an http(s) URL"),
    (f"numpy>=2 {H}\n", "numpy is not pinned to one version"),
    (f"numpy==1.26.* {H}\n", "numpy is not pinned to one version"),  # uv --require-hashes refuses it too
    (f"numpy==2.0.0 \\\n    --hash=crc32:{'a' * 32}\n", "line 2 is neither a hash"),
    # a line break uv may see where a split on newlines would not
    (f"numpy==2.0.0 {H}\r--index-url http://127.0.0.1:1/simple\n", "control character"),
    (f"numpy==2.0.0 {H}\x0b--index-url http://127.0.0.1:1/simple\n", "control character"),
    (f"numpy==2.0.0 {H}\u2028--index-url http://127.0.0.1:1/simple\n", "control character"),
])
def test_anything_else_is_refused_with_its_line(lock, problem):
    found = lock_problem(lock)
    assert found is not None and problem in found
