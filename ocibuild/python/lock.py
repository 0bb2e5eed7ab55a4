"""Locking Python requirements with uv, for the target Python version and platform.

uv runs in a subprocess (through plumbum) from the `uv` wheel installed with ocibuild. Only
wheels are admitted (`--only-binary :all:`): nothing is ever built on the host for the target.
"""

from __future__ import annotations

from pathlib import Path

from ocibuild.errors import LockError
from ocibuild.oci.platform import Platform


def uv_command():
    import uv  # the PyPI package shipping the binary
    from plumbum import local  # imported when uv runs, not by every command

    return local[uv.find_uv_bin()]


def lock_requirements(requirements: Path, lock: Path, python_version: str, platform: Platform, *,
                      constraints: Path | None = None, env: dict | None = None,
                      pyproject: Path | None = None, extras: tuple[str, ...] = (),
                      scrub=lambda text: text) -> None:
    """Write `lock` (exact versions and hashes) for `requirements`, or raise with uv's reason.

    uv runs from the requirements' directory with relative paths, so its `# via -r` annotations
    name `requirements.txt`, not the staging directory: the same input gives the same lock.
    """
    from plumbum import ProcessExecutionError, local

    inputs = [requirements.name] if pyproject is None else [pyproject.name, requirements.name]
    args = ["pip", "compile", *inputs, *(f"--extra={e}" for e in extras), "-o", str(lock.resolve()), "--quiet", "--no-header",
            "--generate-hashes", "--only-binary", ":all:",
            "--python-version", python_version, "--python-platform", platform.uv_platform]
    if constraints is not None:  # pins of locked inputs (uv.lock, pylock.toml, hashed requirements)
        args += ["-c", constraints.name]
    try:
        with local.cwd(requirements.parent):
            uv_command()(*args, **({"env": env} if env is not None else {}))
    except ProcessExecutionError as exc:
        raise LockError(f"cannot lock Python requirements for Python {python_version} on {platform}: "
                        + scrub(uv_reason(exc.stderr))) from None


def uv_reason(stderr: str) -> str:
    """uv explains failures over several indented lines; fold them into one."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = " ".join(lines)
    return text.removeprefix("error: ") or "uv failed without a message"
