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


def test_a_temp_file_that_cannot_be_made_is_named_by_its_directory(tmp_path):
    """The user chose the directory, never the temp name: an error names the directory. (Made to
    fail with too many open files, which holds for root too: root writes into any directory.)"""
    code = textwrap.dedent("""
        import os, resource, sys
        from pathlib import Path
        from ocibuild.store.atomic import TempFile

        open_now = len(os.listdir("/proc/self/fd")) - 1
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        try:
            TempFile(Path(sys.argv[1]))  # the directory's lock takes the last descriptor
        except OSError as exc:
            print(exc.strerror, exc.filename)
    """)
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == f"Too many open files {tmp_path}", result.stderr
    assert list(tmp_path.iterdir()) == []
