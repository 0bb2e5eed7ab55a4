"""`containerize`: a bento becomes an Image (base + layers + config). It knows no sink.

Layers, least to most often changed: base, system packages, Python dependencies, serving runtime,
one layer per model, source. Timestamps come from the input, never the clock: shared layers
(dependencies, runtime, models) use `SOURCE_DATE_EPOCH` or 0, so they are identical for every
bento; the source layer and the config use `SOURCE_DATE_EPOCH` or the bento's creation time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ocibuild import contract
from ocibuild.base import DEFAULT_PATH, BaseImage, Sources, debian_base, resolve_base
from ocibuild.bento.info import MODEL_COPIES, python_lock
from ocibuild.bento.info import debian_lock as debian_lock_path
from ocibuild.bento.store import Bento
from ocibuild.errors import ImageError
from ocibuild.layers.app import model_entries, runtime_entries, source_entries
from ocibuild.layers.bytecode import bytecode_for, compiled_content, shared_bytecode
from ocibuild.layers.compression import Compression
from ocibuild.layers.writer import LayerWriter
from ocibuild.models.store import content_digest
from ocibuild.oci.image import Image
from ocibuild.oci.index import Index
from ocibuild.oci.platform import Platform
from ocibuild.python.deps import dependency_layers
from ocibuild.python.lock import read_lock
from ocibuild.store.blobs import LayerBlob

ENTRYPOINT = ["python3", "-m", "ocibuild.runtime.entrypoint"]
MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z: the last second an image's `created` can name


@dataclass(frozen=True)
class ContainerizeOptions:
    """How one image is built from a bento: its platform, compression, base and time."""

    platform: Platform | None = None  # None: the one the bento was locked for
    compression: Compression = Compression.GZIP
    base: str | None = None  # overrides the bento's base_image
    source_date_epoch: int | None = None


def source_date_epoch(environ=os.environ) -> int | None:
    value = environ.get("SOURCE_DATE_EPOCH")
    if value is None:
        return None
    if not value.isdigit() or int(value) > MAX_EPOCH:
        raise ImageError(f"SOURCE_DATE_EPOCH must be a whole number of seconds up to {MAX_EPOCH}, not {value!r}")
    return int(value)


def locked_platforms(bento: Bento) -> list[Platform]:
    return [Platform.target(p) for p in bento.info.targets]


def lock_path(bento: Bento, platform: Platform | None = None, kind: str = "python"):
    """The bento's Python (or Debian) lock for `platform` (default: its first platform)."""
    multi = bento.info.platforms is not None
    target = str(platform or bento.info.platform)
    return bento.path / (python_lock if kind == "python" else debian_lock_path)(target, multi)


def debian_lock(bento: Bento, platform: Platform | None = None):
    from ocibuild.debian.lock import DebianLock
    from ocibuild.errors import DebianError

    path = lock_path(bento, platform, "debian")
    if not path.is_file():
        return None
    try:
        return DebianLock.parse(path.read_text(errors="replace"))
    except DebianError as exc:
        raise DebianError(f"bento {bento.tag}, {path.relative_to(bento.path)}: {exc}") from None


def containerize(bento: Bento, options: ContainerizeOptions, sources: Sources,
                 step: Callable[[str], None] = lambda _: None) -> Image:
    info = bento.info
    platform = options.platform or Platform.target(info.platform)
    if str(platform) not in info.targets:
        raise ImageError(f"bento {bento.tag} was locked for {', '.join(info.targets)}, not {platform}: "
                         f"build it with `ocibuild build --platform {platform}`")
    python_lock_path = lock_path(bento, platform)
    read_lock(python_lock_path, f"bento {bento.tag}, {python_lock_path.relative_to(bento.path)}")  # before uv sees it
    pinned = options.source_date_epoch is not None
    epoch = options.source_date_epoch if pinned else int(info.created_at.timestamp())
    created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    shared = LayerWriter(sources.blobs, options.compression, options.source_date_epoch if pinned else 0)

    def history(created_by: str) -> dict:
        return {"created": created, "created_by": created_by}

    step("base image")
    lock = debian_lock(bento, platform)
    reference = options.base or info.base_image
    if reference is not None:
        base = resolve_base(reference, platform, sources,
                            info.base.digest if info.base and options.base is None else None)
    elif lock is not None:
        base = debian_base(lock, info.python_version, platform, sources, shared)
    else:
        raise ImageError(f"bento {bento.tag} has no Debian lock and names no base_image: pass --base")
    layers = []
    if lock and lock.system:
        step("system packages")
        from ocibuild.debian.base import debian_layer

        archive = sources.debian_archive(lock.release, lock.architecture)
        blob = debian_layer(lock.system, archive, sources.blobs, options.compression, shared.epoch)
        layers.append(shared.layer(blob, history("ocibuild: Debian packages " + " ".join(p.name for p in lock.system))))
    step("python dependencies")
    layers += [shared.layer(blob, history(f"ocibuild: {description}"))
               for blob, description in dependency_layers(python_lock_path, info.python_version, platform, shared,
                                                                   split_native=info.platforms is not None)]
    step("serving runtime")
    bytecode = bytecode_for(info.python_version)
    runtime = compiled_content(shared, "runtime", runtime_entries(), bytecode)
    layers.append(shared.layer(runtime, history("ocibuild: serving runtime")))
    for model in info.models:
        step(f"model {model.tag}")
        blob = model_layer(bento.path / MODEL_COPIES / model.name / model.version, model.name, model.version,
                           model.digest, shared, f" in bento {bento.tag}")
        layers.append(shared.layer(blob, history(f"ocibuild: model {model.tag}")))
    step("service source")
    source = compiled_content(shared.at(epoch), "source", source_entries(bento.path, exclude=(MODEL_COPIES,)),
                              bytecode, lambda path: path.startswith(f"{contract.APP_DIR}/src/"))
    layers.append(shared.layer(source, history(f"ocibuild: bento {bento.tag}")))
    return configure(base.image.append(*layers), bento, base, created, platform)


def containerize_platforms(bento: Bento, options: ContainerizeOptions, sources: Sources,
                           platforms: list[Platform] | None = None,
                           step: Callable[[str], None] = lambda _: None) -> Image | Index:
    """One image per platform (default: every platform the bento was locked for) and, for more
    than one, an OCI image index over them, in the order given. One platform gives the image
    itself: a single-platform bento containerizes exactly as it always did."""
    targets = list(dict.fromkeys(platforms or ([options.platform] if options.platform else locked_platforms(bento))))
    images = []
    with shared_bytecode(sources.blobs.tmp) if len(targets) > 1 else contextlib.nullcontext():
        for platform in targets:
            report = (lambda s, p=platform: step(f"{s} ({p})")) if len(targets) > 1 else step
            images.append(containerize(bento, dataclasses.replace(options, platform=platform), sources, report))
    if len(images) == 1:
        return images[0]
    return Index(tuple(images))


def model_layer(directory: Path, name: str, version: str, digest: str, writer: LayerWriter,
                where: str = "") -> LayerBlob:
    """A model's layer, the same in every image and artifact: keyed by the model's content digest,
    so a hit reads no bytes. On a miss the files are checked against that digest first, so a
    model changed or removed meanwhile never becomes a layer. `where` names its holder."""
    def entries():
        found = content_digest(directory / contract.MODEL_FILES)[0]
        if found != digest:
            raise ImageError(f"model {name}:{version}{where} no longer matches its digest ({found}, pinned {digest})"
                             + (": rebuild the bento" if where else ""))
        return model_entries(directory, name, version)

    return writer.write(writer.key("model", name, version, digest), entries)


def image_env(base_env: list[str], service_envs: list[dict], entry_point: str) -> list[str]:
    """The base's env, our paths in front, then the service's defaulted envs (never a bare name)."""
    env = dict(item.split("=", 1) if "=" in item else (item, "") for item in base_env)
    path = env.get("PATH", DEFAULT_PATH)
    python_path = ":".join(p for p in (f"/{contract.RUNTIME_DIR}", f"/{contract.SITE_PACKAGES}",
                                       env.get("PYTHONPATH")) if p)
    env.update({
        "PATH": f"/{contract.SITE_PACKAGES}/bin:{path}",
        "PYTHONPATH": python_path,
        "PYTHONUNBUFFERED": "1",
        "HOME": f"/{contract.HOME_DIR}",
        contract.SERVICE_ENV: entry_point,
        contract.SRC_ENV: f"/{contract.APP_DIR}/src",
        contract.MODELS_DIR_ENV: f"/{contract.MODELS_DIR}",
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
        "org.opencontainers.image.base.digest": str(base.digest),
        "io.ocibuild.bento": str(bento.tag),
    }
    if not base.local:  # a local path would leak the host's layout into the image
        labels["org.opencontainers.image.base.name"] = base.name
    inner = image.config.get("config", {})
    return (image
            .with_top(created=created, architecture=platform.architecture, os=platform.os)
            .with_config(Env=image_env(inner.get("Env") or [], info.envs, info.service),
                         Entrypoint=ENTRYPOINT, Cmd=["serve"], User=f"{contract.USER_ID}:{contract.USER_ID}",
                         WorkingDir=f"/{contract.APP_DIR}/src", ExposedPorts={f"{contract.PORT}/tcp": {}},
                         Labels={**(inner.get("Labels") or {}), **labels})
            .with_annotations(**labels))
