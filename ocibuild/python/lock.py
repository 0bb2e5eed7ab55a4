"""Locking Python requirements with uv, for the target Python version and platform.

uv runs in a subprocess (through plumbum) from the `uv` wheel installed with ocibuild. Only
wheels are admitted (`--only-binary :all:`): nothing is ever built on the host for the target.
"""

from __future__ import annotations

import re
from pathlib import Path

from ocibuild.errors import LockError
from ocibuild.oci.platform import Platform
from ocibuild.sdk.pep508 import pinned_name

_HASH = re.compile(r"hash=(md5|sha256|sha384|sha512|blake2b):[0-9a-f]{32,128}")  # what uv may write
_PLAIN = re.compile(r" +--" + _HASH.pattern + r"( \\)?|\s*(#.*)?")  # most lines: a hash continuation, a comment
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


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


def lock_problem(text: str) -> str | None:
    """Why a lock is not one that `uv pip install --require-hashes -r` may be given (None: it is).

    A lock from a bento archive or a registry cache is input from elsewhere, and uv reads every
    option a requirements file holds: an `--extra-index-url` line, indented as a continuation or
    not, would make it fetch the packages from another index. So a lock holds only what `lock`
    writes: pinned requirements (`name[extras]==version ; marker`, or `name @ https://...` as a
    hashed requirements file or uv.lock may give), each followed by its hashes on the same line
    or on continuation lines, comments and blank lines. Control characters are
    refused, so no line can break where uv would break it and this check would not.
    """
    if _CONTROL.search(text):
        return "it holds a control character"
    for number, line in enumerate(text.split("\n"), 1):
        if _PLAIN.fullmatch(line):  # blank, a comment, or a hash continuation
            continue
        body = line.strip().removesuffix("\\").rstrip()
        if line[0].isspace():
            if not (body.startswith("--") and _HASH.fullmatch(body[2:])):
                return f"line {number} is neither a hash nor a comment"
            continue
        requirement, *options = body.split(" --")
        if (name := pinned_name(requirement)) is None:  # not uv's usual `name==version`: parse it
            req = _requirement(requirement)
            if req is None:
                return f"line {number} is not a pinned requirement"
            if not is_pinned(req):
                return f"line {number}: {req.name} is not pinned to one version or to an http(s) URL"
            name = req.name
        if not all(_HASH.fullmatch(option.strip()) for option in options):
            return f"line {number}: {name} has an option other than --hash"
    return None


def is_pinned(req) -> bool:
    """A parsed requirement a lock may hold: one version (`==`, no `.*`), or an http(s) URL alone."""
    if req.url:
        return req.url.startswith(("https://", "http://")) and not req.specifier
    return [(s.operator, s.version.endswith(".*")) for s in req.specifier] == [("==", False)]


def _requirement(text: str):
    """`text` parsed by `packaging` (None: not a requirement), imported only for a line that needs it."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def read_lock(path: Path, where: str) -> str:
    """A bento's Python lock, refused before uv or anything else reads it unless `lock_problem`
    accepts it (`where` names it in the error: the bento and the file)."""
    text = path.read_text(errors="replace")
    if problem := lock_problem(text):
        raise LockError(f"{where}: {problem}")
    return text
