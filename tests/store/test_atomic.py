"""Crash-safe writes: a write that fails leaves nothing behind, not even a temp file."""

import subprocess
import sys
import textwrap

FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    from pathlib import Path
    from ocibuild.store.atomic import TempFile

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a killed process: a full disk's ENOSPC alike
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    out = Path(sys.argv[1])
    try:
        with TempFile(out) as tmp:
            tmp.file.write(b"x" * 6000)  # held in the write buffer: it fails as it is flushed
            tmp.commit(out / "image.tar")
    except OSError as exc:
        print(exc.errno)
""")


def test_a_write_that_fails_as_it_is_flushed_leaves_no_temp_file(tmp_path):
    """The flush fails in `commit`, then again in the close on the way out: the temp file must go
    all the same (it was left in the user's output directory, as big as the disk had room for)."""
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([sys.executable, "-c", FULL_DISK, str(out)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "27"  # EFBIG
    assert list(out.iterdir()) == []
