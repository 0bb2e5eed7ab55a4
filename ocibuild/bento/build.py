"""`ocibuild build`: service directory -> bento in the store, all or nothing."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import ocibuild
from ocibuild.base import Sources, pin, resolve_base
from ocibuild.bento.collect import SourceFile, collect_files
from ocibuild.bento.info import (
    BENTO_FILE,
    LOCK,
    MODELS_DIR,
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
from ocibuild.store.tags import Tag, new_version, validate_version

# The serving runtime's own dependencies, locked together with the service's so they can coexist.
RUNTIME_REQUIREMENTS = ("uvicorn>=0.30", "packaging>=23")
REQUIREMENTS_PYPROJECT = "env/python/pyproject.toml"  # a pyproject with [tool.uv.sources], as uv's input
CONSTRAINTS = "env/python/constraints.txt"  # the pins of locked inputs, for uv to resolve the rest within


def build_bento(path: Path, store: BentoStore, *, entry_point: str | None = None,
                version: str | None = None, platform: Platform = DEFAULT_PLATFORM,
                now: datetime | None = None, platforms: tuple[Platform, ...] | None = None) -> Bento:
    """`platforms` (several): one Python and one Debian lock per platform, the first being `platform`."""
    targets = list(dict.fromkeys(platforms)) if platforms else [platform]
    platform, multi = targets[0], len(targets) > 1
    root = Path(path).resolve()
    loaded = load_service(root, entry_point)
    moment = now or datetime.now(UTC)
    tag = Tag(loaded.spec.name, validate_version(version) if version else new_version(moment))
    files = collect_files(root)
    environ = build_environment(loaded.spec)
    inputs = gather(root, loaded.spec.image, environ)
    requirements = requirements_text(root, loaded.spec.image, inputs)
    models = resolve_models(loaded.spec, ModelStore(store.home))
    sources = build_sources(store.home)
    pinned = pin(loaded.spec.image.base_image, sources.registries)
    debian = {p: lock_debian(loaded.spec.image, p, sources, pinned) for p in targets}
    with store.staging() as staged:
        copy_sources(root, files, staged / SRC_DIR)
        for model in models:  # hard links: a bento never duplicates model bytes on disk
            link_tree(model.path, staged / MODELS_DIR / model.info.name / model.info.version)
        (staged / REQUIREMENTS).parent.mkdir(parents=True)
        (staged / REQUIREMENTS).write_text(requirements)
        for target in targets:
            lock_python(staged, inputs, environ, loaded.spec, target, python_lock(str(target), multi))
            if debian[target] is not None:
                (staged / debian_lock(str(target), multi)).parent.mkdir(parents=True, exist_ok=True)
                (staged / debian_lock(str(target), multi)).write_text(debian[target].text())
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
                lock: str = LOCK) -> None:
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
    lock_requirements(staged / REQUIREMENTS, resolved, spec.image.python_version, platform,
                      constraints=constraints, env=env, pyproject=pyproject, extras=inputs.extras,
                      scrub=lambda text: scrub(text, env, inputs.indexes))
    resolved.write_text(merge_lock(inputs, resolved.read_text()))
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


def lock_debian(image: PythonImage, platform: Platform, sources: Sources, pinned) -> object | None:
    """Debian packages pinned for the default base and `system_packages` (None: nothing to pin).

    On a `base_image`, only the packages it lacks are locked, from its release: both are read
    from the base itself, resolved exactly as containerize will resolve it.
    """
    from ocibuild.debian.archive import DebianSettings
    from ocibuild.debian.base import lock_packages
    from ocibuild.debian.installed import read_base_system

    if image.base_image is not None and not image.debian_packages:
        return None
    base_system = None
    if image.base_image is not None:
        base = resolve_base(image.base_image, platform, sources, pinned[1] if pinned else None)
        base_system = read_base_system([layer.path() for layer in base.image.layers], image.base_image)
    return lock_packages(image.python_version, list(image.debian_packages), platform.architecture,
                         DebianSettings.load(sources.home), DebianSettings.cache_dir(sources.home), base_system)


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
