"""`ocibuild build`: service directory -> bento in the store, all or nothing."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import ocibuild
from ocibuild.background import Background
from ocibuild.base import Sources, pin, resolve_base
from ocibuild.bento.collect import SourceFile, check_module_kept, collect_files
from ocibuild.bento.info import (
    BENTO_FILE,
    MODEL_COPIES,
    OPENAPI,
    REQUIREMENTS,
    SRC_DIR,
    BasePin,
    BentoInfo,
    ModelPin,
    debian_lock,
    python_lock,
)
from ocibuild.bento.loader import LoadedService, load_service
from ocibuild.bento.reuse import LockCache, file_input, uv_settings
from ocibuild.python.inputs import (
    INDEXES,
    PythonInputs,
    build_environment,
    gather,
    merge_lock,
    scrub,
    uv_index_environment,
    write_indexes,
)
from ocibuild.bento.store import Bento, BentoStore
from ocibuild.errors import NotFoundError
from ocibuild.models.store import ModelStore, StoredModel, link_tree
from ocibuild.oci.platform import DEFAULT_PLATFORM, Platform
from ocibuild.python.lock import lock_requirements
from ocibuild.registry.session import Registries
from ocibuild.sdk.images import PythonImage
from ocibuild.sdk.openapi import openapi_document
from ocibuild.sdk.service import ServiceSpec
from ocibuild.store.blobs import BlobStore
from ocibuild.store.records import utc_iso
from ocibuild.sdk.names import Tag, validate_version
from ocibuild.store.versioned import new_version

# The serving runtime's own dependencies, locked together with the service's so they can coexist.
RUNTIME_REQUIREMENTS = ("uvicorn>=0.30", "packaging>=23")
REQUIREMENTS_PYPROJECT = "env/python/pyproject.toml"  # a pyproject with [tool.uv.sources], as uv's input
CONSTRAINTS = "env/python/constraints.txt"  # the pins of locked inputs, for uv to resolve the rest within


def build_bento(path: Path, store: BentoStore, *, entry_point: str | None = None,
                version: str | None = None, platform: Platform = DEFAULT_PLATFORM,
                now: datetime | None = None, platforms: tuple[Platform, ...] | None = None,
                refresh: bool = False, registry_locks=None,
                loaded_hook: Callable[[ServiceSpec], None] | None = None) -> Bento:
    """`platforms` (several): one Python and one Debian lock per platform, the first being `platform`.
    `refresh`: resolve the locks again even when their inputs are those of a previous build.
    `registry_locks` (`bento.lockcache.LockCache`): locks recorded in a registry cache, reused
    when their inputs are unchanged, so a fresh runner does not resolve again.
    `loaded_hook` gets the service's spec as soon as it is known (`build --containerize` starts
    the image's bytecode compiler there, so its start-up overlaps the rest of the build)."""
    targets = list(dict.fromkeys(platforms)) if platforms else [platform]
    platform, multi = targets[0], len(targets) > 1
    root = Path(path).resolve()
    loaded = load_service(root, entry_point)
    if loaded_hook is not None:
        loaded_hook(loaded.spec)
    moment = now or datetime.now(UTC)
    tag = Tag(loaded.spec.name, validate_version(version) if version is not None else new_version(moment))
    files = collect_files(root)
    check_module_kept(files, loaded.entry_point.partition(":")[0])
    environ = build_environment(loaded.spec)
    inputs = gather(root, loaded.spec.image, environ)
    requirements = requirements_text(root, loaded.spec.image, inputs)
    models = resolve_models(loaded.spec, ModelStore(store.home))
    sources = build_sources(store.home)
    pinned = pin(loaded.spec.image.base_image, sources.registries)
    locks = LockCache(store.home, refresh)

    def debian_for(target: Platform):
        cached = registry_locks.debian(loaded.spec.image.to_dict(), str(target), pinned[1] if pinned else None,
                                       target.architecture) if registry_locks else None
        return cached or lock_debian(loaded.spec.image, target, sources, pinned, locks)

    # The Debian locks (the archive's index, over the network) resolve in a thread of their own
    # while uv resolves the Python ones: neither reads the other.
    with Background(1) as pool, store.staging() as staged:
        debian = {p: pool.submit(debian_for, p) for p in targets}
        copy_sources(root, files, staged / SRC_DIR)
        for model in models:  # hard links: a bento never duplicates model bytes on disk
            link_tree(model.path, staged / MODEL_COPIES / model.info.name / model.info.version)
        (staged / REQUIREMENTS).parent.mkdir(parents=True)
        (staged / REQUIREMENTS).write_text(requirements)
        for target in targets:
            lock_python(staged, inputs, environ, loaded.spec, target, python_lock(str(target), multi), locks,
                        registry_locks)
            if (locked := debian[target].result()) is not None:
                (staged / debian_lock(str(target), multi)).parent.mkdir(parents=True, exist_ok=True)
                (staged / debian_lock(str(target), multi)).write_text(locked.text())
        (staged / OPENAPI).parent.mkdir(parents=True)
        (staged / OPENAPI).write_text(json.dumps(openapi_document(loaded.spec, tag.version), indent=2))
        info = dataclasses.replace(bento_info(loaded, tag, moment, platform, files, models),
                                   base=BasePin(*pinned) if pinned else None,
                                   platforms=[str(p) for p in targets] if multi else None)
        info.dump(staged / BENTO_FILE)
        return Bento(store.commit(staged, tag), info)


def requirements_text(root: Path, image: PythonImage, inputs: PythonInputs | None = None) -> str:
    """What uv resolves: packages, unlocked requirements files and pyproject deps, the runtime's."""
    inputs = inputs if inputs is not None else gather(root, image, os.environ)
    lines = ["# service requirements", *image.packages, *inputs.loose]
    lines += ["# ocibuild serving runtime", *RUNTIME_REQUIREMENTS]
    return "\n".join(lines) + "\n"


def lock_python(staged: Path, inputs: PythonInputs, environ: dict, spec: ServiceSpec, platform: Platform,
                lock: str, locks: LockCache, registry_locks=None) -> None:
    """The bento's lock: locked inputs as given, the rest resolved by uv within their pins."""
    constraints = None
    if inputs.locked:
        constraints = staged / CONSTRAINTS
        constraints.write_text(inputs.constraints())
    pyproject = None
    if inputs.pyproject is not None:  # uv reads its dependencies, indexes and per-package index pins
        pyproject = staged / REQUIREMENTS_PYPROJECT
        shutil.copyfile(inputs.pyproject, pyproject)
    env = {**environ, **uv_index_environment(inputs.indexes, environ, pyproject is not None)}
    resolved = staged / lock

    def resolve():
        cached = registry_locks.python(staged, spec.image.to_dict(), str(platform), merge_lock(inputs, "")) \
            if registry_locks else None
        if cached is not None:  # recorded whole, locked inputs included
            resolved.write_text(cached)
            return
        lock_requirements(staged / REQUIREMENTS, resolved, spec.image.python_version, platform,
                          constraints=constraints, env=env, pyproject=pyproject, extras=inputs.extras,
                          scrub=lambda text: scrub(text, env, inputs.indexes))
        resolved.write_text(merge_lock(inputs, resolved.read_text()))

    # what uv reads, and how it is told to resolve: the same inputs give the same lock
    locks.file("python", [file_input(staged / REQUIREMENTS), file_input(constraints), file_input(pyproject),
                          merge_lock(inputs, ""), ",".join(inputs.extras), spec.image.python_version,
                          platform.uv_platform, *(repr(index) for index in inputs.indexes), *uv_settings(env)],
               resolved, resolve)
    defaults = {e.name: e.value for e in spec.build_envs() if e.value is not None}
    if inputs.indexes or defaults:
        write_indexes(staged / INDEXES, inputs.indexes, defaults)


def copy_sources(root: Path, files: list[SourceFile], dest: Path) -> None:
    dest.mkdir(parents=True)
    for f in files:
        target = dest / f.relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        if f.link is not None:
            os.symlink(f.link, target)
        else:
            shutil.copyfile(root / f.relpath, target)
            shutil.copymode(root / f.relpath, target)


def build_sources(home: Path) -> Sources:
    return Sources(Registries.from_home(home), BlobStore(home / "cache"), home)


def lock_debian(image: PythonImage, platform: Platform, sources: Sources, pinned,
                locks: LockCache) -> object | None:
    """Debian packages pinned for the default base and `system_packages` (None: nothing to pin).

    On a `base_image`, only the packages it lacks are locked, from its release: both are read
    from the base itself, resolved exactly as containerize will resolve it.
    """
    from ocibuild.debian.lock import EXCLUDED, DebianLock, base_packages
    from ocibuild.debian.settings import DebianSettings

    if image.base_image is not None and not image.debian_packages:
        return None
    settings = DebianSettings.load(sources.home)
    resolve = lambda: _lock_debian(image, platform, sources, pinned, settings).text()  # noqa: E731
    if image.base_image is not None and pinned is None:  # a local base: its content is unknown here
        return DebianLock.parse(resolve())
    return DebianLock.parse(locks.text("debian", [image.python_version, platform.architecture, settings.mirror,
                                                  str(settings.require_signature), image.base_image or "",
                                                  str(pinned[1]) if pinned else "", *sorted(image.debian_packages),
                                                  "|", *base_packages(image.python_version), *sorted(EXCLUDED)],
                                       resolve))


def _lock_debian(image: PythonImage, platform: Platform, sources: Sources, pinned, settings):
    from ocibuild.debian.base import lock_packages
    from ocibuild.debian.installed import read_base_system
    from ocibuild.debian.settings import DebianSettings

    base_system = None
    if image.base_image is not None:
        base = resolve_base(image.base_image, platform, sources, pinned[1] if pinned else None)
        base_system = read_base_system([layer.path() for layer in base.image.layers], image.base_image)
    return lock_packages(image.python_version, list(image.debian_packages), platform.architecture,
                         settings, DebianSettings.cache_dir(sources.home), base_system)


def resolve_models(spec: ServiceSpec, models: ModelStore) -> list[StoredModel]:
    """Each declared model pinned to an exact version; a missing one fails the build by name."""
    resolved = []
    for model in spec.models:
        try:
            resolved.append(models.get(model.tag))
        except NotFoundError:
            raise NotFoundError(f"model {model.tag} used by service {spec.name} is not in the model store "
                                "(see `ocibuild models list`; add it with `ocibuild models import PATH --name NAME`)") from None
    return resolved


def bento_info(loaded: LoadedService, tag: Tag, moment: datetime, platform: Platform,
               files: list[SourceFile], models: list[StoredModel]) -> BentoInfo:
    spec = loaded.spec
    return BentoInfo(
        name=tag.name,
        version=tag.version,
        created=utc_iso(moment),
        service=loaded.entry_point,
        image=spec.image.to_dict(),
        platform=str(platform),
        envs=[{"name": e.name, "value": e.value} for e in spec.runtime_envs()],  # build envs stay out
        apis=[{"name": a.name, "route": f"/{a.name}", "input": a.input_schema(),
               "output": a.output_schema()} for a in spec.apis],
        files={"count": len(files), "size": sum(f.size for f in files)},
        ocibuild_version=ocibuild.__version__,
        models=[ModelPin(m.info.name, m.info.version, m.info.digest, m.info.size) for m in models],
    )
