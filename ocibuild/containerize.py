"""`ocibuild containerize`: a bento becomes an Image value (base + layers + config).

Layers, least to most often changed: base, Python dependencies, serving runtime, one layer per
model, source.
Timestamps come from the input, never the clock: shared layers (dependencies, runtime, models) use
`SOURCE_DATE_EPOCH` or 0, so they are identical for every bento; the source layer and the config
use `SOURCE_DATE_EPOCH` or the bento's creation time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ocibuild.bento.info import DEBIAN_LOCK, LOCK
from ocibuild.bento.info import MODELS_DIR as BENTO_MODELS
from ocibuild.bento.store import Bento
from ocibuild.debian.archive import DebianArchive, DebianSettings
from ocibuild.debian.base import DebianLock, debian_layer
from ocibuild.errors import ImageError
from ocibuild.image.model import Descriptor, Image, Layer
from ocibuild.image.sources import BaseImage, is_local_reference, load_local_base
from ocibuild.layers.app import (
    APP_DIR,
    HOME_DIR,
    MODELS_DIR,
    RUNTIME_DIR,
    USER_ID,
    cached_layer,
    model_layer,
    runtime_entries,
    source_entries,
)
from ocibuild.layers.cache import LayerCache
from ocibuild.layers.compression import Compression
from ocibuild.layers.python_deps import SITE_PACKAGES, dependency_layers
from ocibuild.layers.tarwriter import LayerBlob
from ocibuild.models.reference import MODELS_DIR_ENV
from ocibuild.platforms import DEFAULT_PLATFORM, Platform
from ocibuild.registry.pull import pull_base
from ocibuild.registry.reference import Reference
from ocibuild.registry.session import Registries

PORT = 3000
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENTRYPOINT = ["python3", "-m", "ocibuild.runtime.entrypoint"]


@dataclass(frozen=True)
class ContainerizeOptions:
    platform: Platform = DEFAULT_PLATFORM
    compression: Compression = Compression.GZIP
    base: str | None = None  # overrides the bento's base_image
    source_date_epoch: int | None = None


@dataclass(frozen=True)
class Sources:
    """Where base material comes from: registries, and the Debian archive configured in `home`
    (read only when a bento's Debian packages are used)."""

    registries: Registries
    home: Path | None = None

    @classmethod
    def from_home(cls, home: Path, registries: Registries) -> Sources:
        return cls(registries, home)

    def debian_archive(self, lock: DebianLock) -> DebianArchive:
        if self.home is None:
            raise ImageError("this bento is built on Debian packages, but no Debian archive is configured")
        return DebianArchive(DebianSettings.load(self.home), lock.release, lock.architecture,
                             DebianSettings.cache_dir(self.home))


def source_date_epoch() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None:
        return None
    if not value.isdigit():
        raise ImageError(f"SOURCE_DATE_EPOCH must be a whole number of seconds, not {value!r}")
    return int(value)


def debian_lock(bento: Bento) -> DebianLock | None:
    path = bento.path / DEBIAN_LOCK
    return DebianLock.parse(path.read_text()) if path.is_file() else None


def resolve_base(bento: Bento, options: ContainerizeOptions, cache: LayerCache, registries: Registries,
                 debian: DebianArchive | None, epoch: int) -> BaseImage:
    """The base the bento pinned: its Debian packages, a registry base by the digest recorded at
    build, a local base; or `--base`."""
    reference = options.base or bento.info.image.get("base_image")
    if reference is None:
        if debian is None:
            raise ImageError(f"bento {bento.tag} has no Debian lock and names no base_image: pass --base")
        return debian_base(debian_lock(bento), debian, bento.info.python_version, options, cache, epoch)
    if is_local_reference(reference):
        return load_local_base(reference, cache, options.platform)
    ref = Reference.parse(reference)
    if options.base is None and bento.info.base and not ref.digest:
        ref = ref.with_digest(bento.info.base["digest"])
    return pull_base(ref, registries, cache, options.platform)


def debian_base(lock: DebianLock, archive: DebianArchive, python_version: str, options: ContainerizeOptions,
                cache: LayerCache, epoch: int) -> BaseImage:
    blob = debian_layer(lock.base, archive, cache, options.compression, epoch, skeleton_for=python_version)
    layer = Layer(Descriptor(blob.media_type, blob.digest, blob.size), blob.diff_id, cache.blob_path(blob.digest),
                  {"created_by": f"ocibuild: Debian {lock.release} base ({len(lock.base)} packages)"})
    config = {"architecture": options.platform.architecture, "os": options.platform.os,
              "config": {"Env": [f"PATH={DEFAULT_PATH}", "LANG=C.UTF-8"]}}
    return BaseImage(Image(config).append(layer), f"debian:{lock.release}", blob.digest)


def image_for_bento(bento: Bento, options: ContainerizeOptions, cache: LayerCache, sources: Sources,
                    step: Callable[[str], None] = lambda _: None) -> Image:
    info = bento.info
    if str(options.platform) != info.platform:
        raise ImageError(f"bento {bento.tag} was locked for {info.platform}, not {options.platform}: "
                         f"build it with `ocibuild build --platform {options.platform}`")
    pinned = options.source_date_epoch is not None
    shared_epoch = options.source_date_epoch if pinned else 0
    epoch = options.source_date_epoch if pinned else int(info.created_at.timestamp())
    created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    step("base image")
    lock = debian_lock(bento)
    own_base = options.base or bento.info.image.get("base_image")
    debian = sources.debian_archive(lock) if lock and (lock.system or not own_base) else None
    base = resolve_base(bento, options, cache, sources.registries, debian, shared_epoch)
    layers = []
    if lock and lock.system:
        step("system packages")
        blob = debian_layer(lock.system, debian, cache, options.compression, shared_epoch)
        layers.append(_layer(blob, cache, created, "ocibuild: Debian packages " + " ".join(p.name for p in lock.system)))
    step("python dependencies")
    layers += [_layer(blob, cache, created, f"ocibuild: {description}")
              for blob, description in dependency_layers(bento.path / LOCK, info.python_version, options.platform,
                                                         options.compression, cache, shared_epoch)]
    step("serving runtime")
    runtime = cached_layer("runtime", runtime_entries(), options.compression, shared_epoch, cache)
    layers.append(_layer(runtime, cache, created, "ocibuild: serving runtime"))
    for model in info.models:
        step(f"model {model['name']}:{model['version']}")
        blob = model_layer(bento.path / BENTO_MODELS / model["name"] / model["version"], model["name"],
                           model["version"], model["digest"], options.compression, shared_epoch, cache)
        layers.append(_layer(blob, cache, created, f"ocibuild: model {model['name']}:{model['version']}"))
    step("service source")
    source = cached_layer("source", source_entries(bento.path, exclude=(BENTO_MODELS,)), options.compression, epoch, cache)
    layers.append(_layer(source, cache, created, f"ocibuild: bento {bento.tag}"))
    return configure(base.image.append(*layers), bento, base, created, options.platform)


def _layer(blob: LayerBlob, cache: LayerCache, created: str, created_by: str) -> Layer:
    return Layer(Descriptor(blob.media_type, blob.digest, blob.size), blob.diff_id,
                 cache.blob_path(blob.digest), {"created": created, "created_by": created_by})


def image_env(base_env: list[str], service_envs: list[dict], entry_point: str) -> list[str]:
    """The base's env, our paths in front, then the service's defaulted envs (never a bare name)."""
    env = dict(item.split("=", 1) if "=" in item else (item, "") for item in base_env)
    path = env.get("PATH", DEFAULT_PATH)
    python_path = ":".join(p for p in (f"/{RUNTIME_DIR}", f"/{SITE_PACKAGES}", env.get("PYTHONPATH")) if p)
    env.update({
        "PATH": f"/{SITE_PACKAGES}/bin:{path}",
        "PYTHONPATH": python_path,
        "PYTHONUNBUFFERED": "1",
        "HOME": f"/{HOME_DIR}",
        "OCIBUILD_SERVICE": entry_point,
        "OCIBUILD_SRC": f"/{APP_DIR}/src",
        MODELS_DIR_ENV: f"/{MODELS_DIR}",
    })
    for e in service_envs:
        if e.get("value") is not None:
            env[e["name"]] = e["value"]
    return [f"{k}={v}" for k, v in env.items()]


def configure(image: Image, bento: Bento, base: BaseImage, created: str, platform: Platform) -> Image:
    info = bento.info
    labels = {
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.version": info.version,
        "org.opencontainers.image.title": info.name,
        "org.opencontainers.image.base.digest": base.digest,
        "io.ocibuild.bento": str(bento.tag),
    }
    if not is_local_reference(base.name):  # a local path would leak the host's layout into the image
        labels["org.opencontainers.image.base.name"] = base.name
    inner = image.config.get("config", {})
    return (image
            .with_top(created=created, architecture=platform.architecture, os=platform.os)
            .with_config(Env=image_env(inner.get("Env") or [], info.envs, info.service),
                         Entrypoint=ENTRYPOINT, Cmd=["serve"], User=f"{USER_ID}:{USER_ID}",
                         WorkingDir=f"/{APP_DIR}/src", ExposedPorts={f"{PORT}/tcp": {}},
                         Labels={**(inner.get("Labels") or {}), **labels})
            .with_annotations(**labels))
