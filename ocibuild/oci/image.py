"""`Image`: config + layers; `append`, `with_config` and friends return new images.

An image read from a layout, an archive or a registry keeps the exact manifest and config bytes
it came with (`Raw`): passed through unchanged (`ocibuild push`), it keeps its digest, whatever
key order or Docker media type it was written with. Any change drops them and the image is
serialized canonically.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from ocibuild.errors import ImageError
from ocibuild.oci import mediatypes
from ocibuild.oci.descriptor import Descriptor, Manifested, canonical_json, parse_json, string_map
from ocibuild.oci.digest import Digest
from ocibuild.oci.layer import Blob, Layer
from ocibuild.oci.platform import Platform


@dataclass(frozen=True)
class Raw:
    """The bytes an image was read from."""

    manifest: bytes
    media_type: str
    config: bytes


@dataclass(frozen=True)
class Image(Manifested):
    """`config` is the whole config object except `rootfs` and `history`."""

    config: dict
    layers: tuple[Layer, ...] = ()
    history: tuple[dict, ...] = ()  # the base's entries (layered or empty), then one per appended layer
    annotations: dict = field(default_factory=dict)
    raw: Raw | None = field(default=None, compare=False, repr=False)

    def _changed(self, **changes) -> Image:
        return dataclasses.replace(self, raw=None, **changes)

    def append(self, *layers: Layer) -> Image:
        return self._changed(layers=self.layers + tuple(layers),
                             history=self.history + tuple(layer.history for layer in layers))

    def with_config(self, **changes) -> Image:
        """Replace keys of the config's `config` object (Env, Entrypoint, ...)."""
        return self._changed(config={**self.config, "config": {**self.config.get("config", {}), **changes}})

    def with_top(self, **changes) -> Image:
        """Replace top-level config keys (created, architecture, ...)."""
        return self._changed(config={**self.config, **changes})

    def with_annotations(self, **annotations: str) -> Image:
        return self._changed(annotations={**self.annotations, **annotations})

    @property
    def media_type(self) -> str:
        return self.raw.media_type if self.raw else mediatypes.MANIFEST

    def config_bytes(self) -> bytes:
        if self.raw:
            return self.raw.config
        return canonical_json({**self.config,
                               "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id) for layer in self.layers]},
                               "history": list(self.history)})

    def config_descriptor(self) -> Descriptor:
        return Descriptor.of(mediatypes.CONFIG, self.config_bytes())

    def manifest_bytes(self) -> bytes:
        if self.raw:
            return self.raw.manifest
        manifest = {
            "schemaVersion": 2,
            "mediaType": mediatypes.MANIFEST,
            "config": self.config_descriptor().to_json(),
            "layers": [layer.descriptor.to_json() for layer in self.layers],
        }
        if self.annotations:
            manifest["annotations"] = dict(self.annotations)
        return canonical_json(manifest)

    def _described(self) -> dict:
        return {"platform": self.platform}

    @property
    def platform(self) -> Platform:
        return Platform(self.config.get("os", "linux"), self.config.get("architecture", "amd64"),
                        self.config.get("variant") or None)

    def size(self) -> int:
        return len(self.config_bytes()) + len(self.manifest_bytes()) + sum(l.descriptor.size for l in self.layers)

    def inline_blobs(self) -> dict[Digest, bytes]:
        return {Digest.of(self.config_bytes()): self.config_bytes()}

    def blobs(self) -> tuple[Blob, ...]:
        """The layers, each distinct digest once (the config travels inline)."""
        return tuple({layer.descriptor.digest: layer for layer in self.layers}.values())

    def children(self) -> tuple:
        return ()


def parse_image(manifest: bytes, media_type: str, config: bytes, layer: Callable[[Descriptor, Digest], Layer],
                where: str) -> Image:
    """An Image from a manifest and its (already verified) config; `layer(descriptor, diff_id)`
    says where each layer's bytes are. Every field is checked: nothing malformed gets through."""
    document = parse_json(manifest, f"the manifest of {where}")
    layers_json = document.get("layers")
    if not isinstance(layers_json, list):
        raise ImageError(f"the manifest of {where} has no list of layers")
    descriptors = [Descriptor.from_json(d, f"layer {i} of {where}") for i, d in enumerate(layers_json)]
    settings = parse_json(config, f"the config of {where}")
    rootfs = settings.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        raise ImageError(f"the config of {where} has no rootfs.diff_ids")
    if len(diff_ids) != len(descriptors):
        raise ImageError(f"{where}: {len(descriptors)} layers but {len(diff_ids)} diff_ids")
    history = settings.get("history") or [{"created_by": "base layer"}] * len(descriptors)
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise ImageError(f"the config of {where} has a malformed history")
    layers = tuple(layer(dataclasses.replace(d, media_type=mediatypes.oci_layer_type(d.media_type)), Digest(diff_id))
                   for d, diff_id in zip(descriptors, diff_ids))
    top = {k: v for k, v in settings.items() if k not in ("rootfs", "history")}
    annotations = string_map(document.get("annotations"), where) or {}
    return Image(top, layers, tuple(history), annotations, Raw(manifest, media_type, config))


def config_descriptor_of(manifest: bytes, where: str) -> Descriptor:
    """The config descriptor a manifest names (to fetch and verify the config before parsing)."""
    return Descriptor.from_json(parse_json(manifest, f"the manifest of {where}").get("config"), f"the config of {where}")
