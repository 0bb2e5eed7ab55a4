"""The Python inputs a user already has: requirements files (hash-pinned or not), `pyproject.toml`
(with or without a `uv.lock`), PEP 751 `pylock.toml`, package indexes and their credentials.

Locked inputs (hash-pinned requirements, `uv.lock` through `uv export --locked`, `pylock.toml`)
are kept as they are, pins and hashes; only what is not locked (plain requirements, the serving
runtime's) is resolved by uv, constrained to the locked pins. Credentials come from the environment
when uv runs and are never written: the bento records index URLs without them (`${VAR}`
references kept unexpanded), and every message uv prints is scrubbed of them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ocibuild.errors import LockError, RecordError, SpecError
from ocibuild.python.lock import is_pinned
from ocibuild.sdk.images import PythonImage, strip_credentials
from ocibuild.sdk.service import ServiceSpec

INDEXES = "env/python/indexes.json"  # beside the lock: what `uv pip install` needs at containerize
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_INDEX_NAME = re.compile(r"[^A-Za-z0-9]")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDEX_FIELDS = {"url", "name", "default", "from_pyproject"}
_UV_INDEX_VARIABLES = ("UV_INDEX", "UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS")
_UV_INDEX_CREDENTIAL = re.compile(r"UV_INDEX_[A-Z0-9_]+_(USERNAME|PASSWORD)")


@dataclass(frozen=True)
class Index:
    """A package index the image declares, as declared: credentials come from the environment only."""

    url: str  # as declared, `${VAR}` unexpanded, literal credentials stripped
    name: str | None = None
    default: bool = False
    from_pyproject: bool = False

    def expanded(self, environ) -> str:
        def value(match):
            name = match.group(1) or match.group(2)
            if name not in environ:
                raise SpecError(f"index {host_of(self.url)} needs the environment variable {name}, which is not set")
            return environ[name]

        return _ENV_REF.sub(value, self.url)

    def argument(self, environ) -> str:
        return f"{self.name}={self.expanded(environ)}" if self.name else self.expanded(environ)


@dataclass
class PythonInputs:
    """What uv is given: locked entries used as they are, loose requirements to resolve, indexes."""

    locked: list[tuple[str, str]] = field(default_factory=list)  # (canonical name, entry as given)
    loose: list[str] = field(default_factory=list)  # requirement lines to resolve
    indexes: list[Index] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # what the locked entries came from
    pyproject: Path | None = None  # given to uv as an input: its [tool.uv.sources] pins packages to indexes
    extras: tuple[str, ...] = ()

    def constraints(self) -> str:
        return "".join(entry_requirement(entry) + "\n" for _, entry in self.locked)

    def locked_text(self) -> str:
        return "".join(entry.rstrip("\n") + "\n" for _, entry in self.locked)


def host_of(url: str) -> str:
    try:
        parts = urlsplit(_ENV_REF.sub("x", url))
        return parts.netloc.rpartition("@")[2] or url
    except ValueError:
        return "?"


def gather(root: Path, image: PythonImage, environ) -> PythonInputs:
    inputs = PythonInputs()
    if image.index is not None:
        inputs.indexes.append(Index(strip_credentials(image.index), None, True))
    inputs.indexes += [Index(strip_credentials(u)) for u in image.extra_indexes]
    for name in image.requirements_files:
        path = _existing(root, name, "requirements file")
        text = path.read_text()
        if "--hash" in text:
            inputs.locked += requirement_entries(text, name)
            inputs.sources.append(name)
        else:
            inputs.loose += [f"# from {name}", *text.splitlines()]
    if image.pyproject is not None:
        _pyproject(root, image, environ, inputs)
    for name in image.lock_files:
        inputs.locked += pylock_entries(_existing(root, name, "lock file"), name)
        inputs.sources.append(name)
    names = [n for n, _ in inputs.locked]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise LockError(f"{twice[0]} is pinned twice, in {' and '.join(inputs.sources)}: lock it in one place")
    return inputs


def _existing(root: Path, name: str, what: str) -> Path:
    """The file `name` in the service directory; a symlink that leads out of it is refused."""
    path = root / name
    if not path.is_file():
        raise SpecError(f"{what} {name} not found in {root}")
    if not path.resolve().is_relative_to(root.resolve()):
        raise SpecError(f"{what} {name} leads outside {root}: refusing to read it")
    return path


def _pyproject(root: Path, image: PythonImage, environ, inputs: PythonInputs) -> None:
    import tomllib  # here and below: a service without such inputs does not pay for the parsers

    path = _existing(root, image.pyproject, "pyproject file")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{image.pyproject}: {exc}") from None
    project = data.get("project", {})
    for entry in data.get("tool", {}).get("uv", {}).get("index", []):
        if not isinstance(entry, dict) or "url" not in entry:
            raise SpecError(f"{image.pyproject}: a [[tool.uv.index]] entry needs a url")
        inputs.indexes.append(Index(strip_credentials(entry["url"]), entry.get("name"), bool(entry.get("default")),
                                    True))
    optional = project.get("optional-dependencies", {})
    for extra in image.pyproject_extras:
        if extra not in optional:
            raise SpecError(f"{image.pyproject} has no optional-dependencies group {extra!r}")
    lock = path.parent / "uv.lock"
    if lock.is_file():
        text = uv_export(path.parent, image.pyproject_extras, environ)
        rel = (Path(image.pyproject).parent / "uv.lock").as_posix()
        inputs.locked += requirement_entries(text, rel)
        inputs.sources.append(rel)
        return
    if data.get("tool", {}).get("uv", {}).get("sources"):
        if "dependencies" in project.get("dynamic", []):
            raise SpecError(f"{image.pyproject}: dynamic dependencies cannot be read without building the project")
        inputs.pyproject, inputs.extras = path, tuple(image.pyproject_extras)
        return
    inputs.loose += [f"# from {image.pyproject}", *project.get("dependencies", [])]
    for extra in image.pyproject_extras:
        inputs.loose += [f"# from {image.pyproject} [{extra}]", *optional[extra]]


def uv_export(project: Path, extras: tuple[str, ...], environ) -> str:
    """The uv.lock's pins and hashes for the project's dependencies, refused if it is out of date."""
    from plumbum import ProcessExecutionError

    from ocibuild.python.lock import uv_command, uv_reason

    args = ["export", "--locked", "--format", "requirements.txt", "--no-dev", "--no-emit-project",
            "--no-header", "--no-annotate", "--quiet", "--project", str(project)]
    for extra in extras:
        args += ["--extra", extra]
    try:
        return uv_command()(*args, env=dict(environ))
    except ProcessExecutionError as exc:
        reason = uv_reason(exc.stderr)
        if "needs to be updated" in reason:
            raise LockError(f"{project.name}/uv.lock does not match pyproject.toml: run `uv lock`") from None
        raise LockError(f"cannot read {project.name}/uv.lock: {scrub(reason, environ)}") from None


def requirement_entries(text: str, source: str) -> list[tuple[str, str]]:
    """Each requirement of a requirements text as one line (continuations joined), with its name."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    joined = re.sub(r"\\\n", " ", text)
    entries = []
    for raw in joined.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line or line.startswith("-"):
            continue  # comments and options (index options come from the image's indexes)
        requirement = entry_requirement(line)
        try:
            req = Requirement(requirement)
        except InvalidRequirement as exc:
            raise LockError(f"{source}: invalid requirement {requirement!r}: {exc}") from None
        if "--hash" not in line:
            raise LockError(f"{source}: {req.name} has no --hash: a locked file pins every package with its hashes")
        if not is_pinned(req):  # else the build would pass and only the image refuse its lock
            raise LockError(f"{source}: {req.name} is not pinned to one version or to an http(s) URL: "
                            "a locked file pins every package with its hashes")
        entries.append((canonicalize_name(req.name), " ".join(line.split())))
    return entries


def entry_requirement(entry: str) -> str:
    return entry.split(" --", 1)[0].strip()


def pylock_entries(path: Path, source: str) -> list[tuple[str, str]]:
    """A PEP 751 lock as requirement entries: each package's version, marker and wheel hashes."""
    import tomllib

    from packaging.utils import canonicalize_name

    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise LockError(f"{source}: {exc}") from None
    if str(data.get("lock-version", "")).split(".")[0] != "1":
        raise LockError(f"{source}: not a PEP 751 lock (lock-version 1.x expected)")
    entries = []
    for package in data.get("packages", []):
        name, version = package.get("name"), package.get("version")
        if not name or not version:
            raise LockError(f"{source}: package {name or '?'} has no version (only index packages are supported)")
        hashes = sorted({h["sha256"] for f in [*package.get("wheels", []), package.get("sdist") or {}]
                         for h in [f.get("hashes", {})] if "sha256" in h})
        if not hashes:
            raise LockError(f"{source}: {name} {version} has no sha256 hash")
        marker = f" ; {package['marker']}" if package.get("marker") else ""
        entries.append((canonicalize_name(name),
                        f"{name}=={version}{marker} " + " ".join(f"--hash=sha256:{h}" for h in hashes)))
    return entries


def merge_lock(inputs: PythonInputs, resolved: str) -> str:
    """The locked entries as given, then what uv resolved for the rest (minus what is locked)."""
    if not inputs.locked:
        return resolved
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    taken = {name for name, _ in inputs.locked}
    kept, skipping = [], False
    for line in resolved.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            name = canonicalize_name(Requirement(entry_requirement(line.rstrip(" \\"))).name)
            skipping = name in taken
        elif not line or line.startswith("#"):
            skipping = False
        if not skipping:
            kept.append(line)
    head = [f"# locked in {', '.join(inputs.sources)}, used as given"]
    return "\n".join(head + inputs.locked_text().splitlines() + ["# resolved by uv"] + kept) + "\n"


def build_environment(spec: ServiceSpec, environ=os.environ) -> dict[str, str]:
    """The environment `build` and uv run with: this one, plus build-stage envs' defaults."""
    env = dict(environ)
    for var in spec.build_envs():
        if var.name not in env and var.value is not None:
            env[var.name] = var.value
        elif var.name not in env and var.stage == "build":
            raise SpecError(f"the build env {var.name} of service {spec.name} is not set")
    return env


def uv_index_environment(indexes: list[Index], environ, pyproject_read: bool = False) -> dict[str, str]:
    """`UV_DEFAULT_INDEX` / `UV_INDEX` for uv, expanded; credentials never reach its command line.

    `pyproject_read`: uv reads the pyproject's own indexes (with their `explicit` flags) itself.
    """
    if pyproject_read:
        indexes = [i for i in indexes if not i.from_pyproject]
    env = {}
    defaults = [i for i in indexes if i.default]
    if defaults:
        env["UV_DEFAULT_INDEX"] = defaults[-1].argument(environ)
    others = [i.argument(environ) for i in indexes if not i.default]
    if others:
        env["UV_INDEX"] = " ".join(others)
    return env


def secrets(indexes: list[Index], environ) -> list[str]:
    """Every credential that may be in uv's output: expanded userinfo, UV_INDEX_*_ envs, build envs."""
    found = []
    for index in indexes:
        try:
            parts = urlsplit(index.expanded(environ))
        except (SpecError, ValueError):
            continue
        found += [unquote(p) for p in (parts.username, parts.password) if p]
        found += [p for p in (parts.username, parts.password) if p]
    found += [v for k, v in environ.items() if k.startswith("UV_INDEX_") and v]
    found += [v for k, v in environ.items() if k in ("UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INDEX",
                                                      "UV_DEFAULT_INDEX") and v]
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


def scrub(text: str, environ, indexes: list[Index] = ()) -> str:
    for secret in secrets(list(indexes), environ):
        text = text.replace(secret, "****")
    return re.sub(r"(://)[^/@\s]+@", r"\1****@", text)


def write_indexes(path: Path, indexes: list[Index], build_envs: dict[str, str]) -> None:
    """What containerize's `uv pip install` needs: index URLs (no credentials) and build-env defaults."""
    path.write_text(json.dumps({"indexes": [asdict(i) for i in indexes], "build_envs": build_envs},
                               indent=2, sort_keys=True) + "\n")


def read_indexes(path: Path) -> tuple[list[Index], dict[str, str]]:
    """The indexes and build-env defaults `write_indexes` recorded in a bento, checked: the bento
    may have been imported from anyone."""
    if not path.is_file():
        return [], {}
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RecordError(f"unreadable {path}: {' '.join(str(exc).split())}") from None
    indexes, envs = (data.get("indexes", []), data.get("build_envs", {})) if isinstance(data, dict) else (None, None)
    if not isinstance(indexes, list) or not all(map(_is_index, indexes)):
        raise RecordError(f"malformed {path}: `indexes` must be a list of indexes (url, name, default, from_pyproject)")
    if not isinstance(envs, dict) or not all(isinstance(k, str) and _ENV_NAME.fullmatch(k) and isinstance(v, str)
                                             for k, v in envs.items()):
        raise RecordError(f"malformed {path}: `build_envs` must map environment variable names to strings")
    return [Index(**i) for i in indexes], envs


def _is_index(value: object) -> bool:
    """One entry of `write_indexes`' list: an `Index` as a mapping, and nothing else."""
    return (isinstance(value, dict) and set(value) <= _INDEX_FIELDS and isinstance(value.get("url"), str)
            and isinstance(value.get("name"), str | None)
            and isinstance(value.get("default", False), bool) and isinstance(value.get("from_pyproject", False), bool))


def install_environment(indexes_file: Path, environ=os.environ) -> tuple[list[Index], dict[str, str]]:
    """The bento's indexes, and the environment uv installs its lock with: this one, plus those of
    the bento's recorded build-env defaults that say where the locked wheels are, and nothing else:
    a `${VAR}` its index URLs use, uv's own index variables and per-index credentials.

    A bento can come from anyone (`ocibuild import`), and containerizing it runs nothing of its
    own: a default such as LD_PRELOAD, naming a library the bento itself ships, would otherwise run
    its code in uv. What passes can only move where wheels come from, and their hashes are locked.
    """
    indexes, recorded = read_indexes(indexes_file)
    used = {m.group(1) or m.group(2) for index in indexes for m in _ENV_REF.finditer(index.url)}
    defaults = {k: v for k, v in recorded.items() if k in used or k in _UV_INDEX_VARIABLES or _UV_INDEX_CREDENTIAL.fullmatch(k)}
    env = {**defaults, **environ}
    return indexes, {**env, **uv_index_environment(indexes, env)}


def index_names(indexes: list[Index]) -> list[str]:
    return [_INDEX_NAME.sub("_", i.name).upper() for i in indexes if i.name]
