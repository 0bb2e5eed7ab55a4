"""Bentos and models as OCI artifacts: `ocibuild export TAG oci://HOST/REPO:TAG`, `import oci://...`.

A model artifact has one layer, byte for byte the layer the model gets in an image (same entries
at `opt/ocibuild/models/NAME/VERSION`, same key in the layer cache, gzip, `SOURCE_DATE_EPOCH` or
0): pushing an image to the same registry afterwards mounts it instead of uploading it again. A
bento artifact has the bento's source layer (the image's `/app` layer, without the carried
models) and one such layer per model. The manifest's annotations carry the tag, the creation
time, the size and, for a bento, its models by digest.

Import fetches every blob verified against its digest and size, extracts each layer with the
safe extractor and its limits, and then makes every check a file import makes (a record, an exact
tag, each model's files against its digest) before anything is committed to the store. Each layer's
subtree (`app/`, a model's directory) is extracted straight to where it belongs, all layers of one
import in one model of the tree: nothing extracted is moved afterwards, so a link never changes
depth, and no layer can re-route a link another made.

Where `oras` is used and why not elsewhere: pulled manifests are validated against the `oras`
manifest schema (the one its own `pull` uses), and layers get `org.opencontainers.image.title`
so that `oras pull` names the files it writes. The transfer itself goes through ocibuild's own
client: `oras` 0.2.43 reads manifests and blobs whole and unbounded, does not verify digests as
it streams, re-serializes manifests on push (so the digest we computed is not the one stored),
cannot mount across repositories, and ignores `DOCKER_CONFIG`'s credential helpers; ocibuild's
`Repository` does all of that with the same keychain as image pushes.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import jsonschema
import oras.schemas

from ocibuild.bento.archive import import_staged, restore_models, verify_bento
from ocibuild.bento.info import MODEL_COPIES, BentoInfo
from ocibuild.bento.store import Bento, BentoStore
from ocibuild.containerize import model_layer as containerize_model_layer
from ocibuild.containerize import source_date_epoch
from ocibuild.contract import APP_DIR, MODELS_DIR
from ocibuild.errors import ArchiveError, ImageError, OcibuildError
from ocibuild.layers.app import source_entries
from ocibuild.layers.compression import Compression
from ocibuild.layers.writer import LayerWriter
from ocibuild.models.store import ModelInfo, ModelStore, StoredModel, model_tag, verify_model
from ocibuild.oci import mediatypes
from ocibuild.oci.descriptor import Descriptor, parse_json
from ocibuild.oci.index import Artifact
from ocibuild.oci.layer import FileLayer
from ocibuild.oci.reference import Reference
from ocibuild.registry.client import Repository
from ocibuild.registry.pull import find_manifest
from ocibuild.registry.push import PushReport, push
from ocibuild.registry.session import Registries
from ocibuild.store.blobs import BlobStore
from ocibuild.store.extract import ExtractLimits, Tree, extract
from ocibuild.store.tarread import open_tar

SCHEME = "oci://"
BENTO_TYPE = "application/vnd.ocibuild.bento.v1"
MODEL_TYPE = "application/vnd.ocibuild.model.v1"
LAYER_TYPES = (mediatypes.LAYER + "+gzip", mediatypes.LAYER)  # what we write; and plain tar
TITLE = "org.opencontainers.image.title"
CREATED = "org.opencontainers.image.created"
TAG = "io.ocibuild.tag"
SIZE = "io.ocibuild.size"
MODELS = "io.ocibuild.models"  # a bento's models: JSON list of "NAME:VERSION@DIGEST"
MODEL = "io.ocibuild.model"  # on a model layer: NAME:VERSION
MODEL_DIGEST = "io.ocibuild.model.digest"  # on a model layer: the model's content digest


def is_oci(target: str) -> bool:
    return str(target).startswith(SCHEME)


def parse_target(target: str) -> Reference:
    ref = Reference.parse(target[len(SCHEME):])
    return ref


def _writer(blobs: BlobStore) -> LayerWriter:
    """The writer containerize uses for shared layers (gzip, the default), so layers are equal."""
    return LayerWriter(blobs, Compression.GZIP, source_date_epoch() or 0)


def model_layer(directory: Path, name: str, version: str, digest: str, writer: LayerWriter,
                annotate: bool = True) -> FileLayer:
    """The model's image layer itself (`containerize.model_layer`), titled for oras."""
    blob = containerize_model_layer(directory, name, version, digest, writer)
    annotations = {TITLE: f"{name}-{version}.tar.gz", MODEL: f"{name}:{version}", MODEL_DIGEST: digest}
    return FileLayer(Descriptor(blob.media_type, blob.digest, blob.size, annotations if annotate else None),
                     blob.diff_id, writer.blobs.blob_path(blob.digest))


def model_artifact(model: StoredModel, blobs: BlobStore) -> Artifact:
    info = model.info
    layer = model_layer(model.path, info.name, info.version, info.digest, _writer(blobs))
    return Artifact(MODEL_TYPE, (layer,), annotations={
        TAG: str(info.tag), CREATED: info.created, SIZE: str(info.size), MODEL_DIGEST: info.digest})


def bento_artifact(bento: Bento, blobs: BlobStore) -> Artifact:
    info = bento.info
    writer = _writer(blobs)
    epoch = source_date_epoch()
    source = writer.at(epoch if epoch is not None else int(info.created_at.timestamp()))
    blob = source.content("source", source_entries(bento.path, exclude=(MODEL_COPIES,)))
    layers = [FileLayer(Descriptor(blob.media_type, blob.digest, blob.size, {TITLE: "bento.tar.gz"}),
                        blob.diff_id, blobs.blob_path(blob.digest))]
    for pin in info.models:
        layers.append(model_layer(bento.path / MODEL_COPIES / pin.name / pin.version, pin.name, pin.version,
                                  pin.digest, writer))
    models = json.dumps([f"{m.name}:{m.version}@{m.digest}" for m in info.models], separators=(",", ":"))
    return Artifact(BENTO_TYPE, tuple(layers), annotations={
        TAG: str(info.tag), CREATED: info.created, SIZE: str(bento.size()), MODELS: models})


def push_artifact(artifact: Artifact, target: str, registries: Registries, blobs: BlobStore) -> PushReport:
    ref = parse_target(target)
    if ref.digest is not None:
        raise ImageError(f"{target}: push to a tag, not a digest")
    return push(artifact, ref, registries, blobs)


# -- import --------------------------------------------------------------------------------------

def fetch_artifact(target: str, artifact_type: str, registries: Registries,
                   blobs: BlobStore) -> tuple[Repository, dict, list[Descriptor]]:
    """The artifact's manifest (verified by the client against its digest, bounded, schema
    checked) and its layer descriptors, each of a type we can extract."""
    ref = parse_target(target)
    repo, data, media_type, digest = find_manifest(ref, registries)
    where = f"{ref.api_host}/{ref.repository}@{digest}"
    document = parse_json(data, f"the manifest of {where}")
    try:
        jsonschema.validate(document, oras.schemas.manifest)
    except jsonschema.ValidationError as exc:
        raise ArchiveError(f"{where} is not an OCI manifest: {exc.message}") from None
    if document.get("mediaType", media_type) != mediatypes.MANIFEST:
        raise ArchiveError(f"{where} is not an OCI artifact manifest ({document.get('mediaType', media_type)})")
    if document.get("artifactType") != artifact_type:
        raise ArchiveError(f"{where} is {document.get('artifactType') or 'a plain image'}, not {artifact_type}")
    layers = [Descriptor.from_json(d, f"layer {i} of {where}") for i, d in enumerate(document["layers"])]
    for layer in layers:
        if layer.media_type not in LAYER_TYPES:
            raise ArchiveError(f"{where}: layer {layer.digest[:19]} has media type {layer.media_type}: refusing it")
    return repo, document, layers


def _extract_layer(repo: Repository, layer: Descriptor, blobs: BlobStore, dest: Path, limits: ExtractLimits,
                   spent: tuple[int, int], under: str, at: str = "", tree: Tree | None = None) -> tuple[int, int]:
    """The layer's subtree `under`, straight into `dest/at`; the (members, bytes) spent so far."""
    if layer.size > limits.max_total_bytes - spent[1]:
        raise ArchiveError(f"{repo}: layer {layer.digest[:19]} declares {layer.size} bytes: refusing it")
    path = repo.fetch_blob(layer.digest, layer.size, blobs)  # verified against digest and size
    try:
        with open_tar(path, "r:*") as tar:
            return extract(tar, dest, limits, under=under, at=at, tree=tree, spent=spent)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"cannot read layer {layer.digest[:19]} of {repo}: {exc}") from None


def _model_name(layer: Descriptor) -> tuple[str, str]:
    """(NAME, VERSION) of the one model a model layer holds, as its annotation names it."""
    named = (layer.annotations or {}).get(MODEL, "")
    name, _, version = named.partition(":")
    try:
        model_tag(name, version)
    except (OcibuildError, ValueError):
        raise ArchiveError(f"model layer {layer.digest[:19]} names no model ({named!r})") from None
    return name, version


def import_model_artifact(store: ModelStore, target: str, registries: Registries, blobs: BlobStore,
                          limits: ExtractLimits = ExtractLimits()) -> StoredModel:
    repo, document, layers = fetch_artifact(target, MODEL_TYPE, registries, blobs)
    if len(layers) != 1:
        raise ArchiveError(f"{target}: a model artifact has one layer, not {len(layers)}")
    claimed = (document.get("annotations") or {}).get(MODEL_DIGEST)

    def fill(staged: Path) -> None:
        name, version = _model_name(layers[0])
        _extract_layer(repo, layers[0], blobs, staged, limits, (0, 0), under=f"{MODELS_DIR}/{name}/{version}")

    def verify(staged: Path, info: ModelInfo) -> None:
        verify_model(staged)
        if claimed and claimed != info.digest:
            raise ArchiveError(f"{target}: the manifest says {claimed}, the model is {info.digest}")
        if (layers[0].annotations or {}).get(MODEL) != f"{info.name}:{info.version}":
            raise ArchiveError(f"{target}: the layer is named {layers[0].annotations.get(MODEL)}, the model "
                               f"{info.name}:{info.version}")

    return store.load(import_staged(store, fill, ModelInfo.load, verify, target))


def import_bento_artifact(store: BentoStore, target: str, registries: Registries, blobs: BlobStore,
                          limits: ExtractLimits = ExtractLimits()) -> Bento:
    repo, document, layers = fetch_artifact(target, BENTO_TYPE, registries, blobs)
    if not layers:
        raise ArchiveError(f"{target}: a bento artifact has at least one layer")
    try:
        claimed = json.loads((document.get("annotations") or {}).get(MODELS, "[]"))
    except (ValueError, RecursionError):
        raise ArchiveError(f"{target}: the {MODELS} annotation is not JSON") from None
    if not isinstance(claimed, list) or not all(isinstance(c, str) for c in claimed):
        raise ArchiveError(f"{target}: the {MODELS} annotation is not a list of NAME:VERSION@DIGEST")

    def fill(staged: Path) -> None:
        # one tree for every layer: a model layer may not re-route a link the bento layer made
        tree = Tree()
        spent = _extract_layer(repo, layers[0], blobs, staged, limits, (0, 0), under=APP_DIR, tree=tree)
        if MODEL_COPIES in tree.kinds:
            raise ArchiveError(f"{target}: the bento layer carries {MODEL_COPIES}: models come as their own layers")
        for layer in layers[1:]:
            name, version = _model_name(layer)
            at = f"{MODEL_COPIES}/{name}/{version}"
            if at in tree.kinds:
                raise ArchiveError(f"{target}: two layers hold model {name}:{version}")
            spent = _extract_layer(repo, layer, blobs, staged, limits, spent, under=f"{MODELS_DIR}/{name}/{version}",
                                   at=at, tree=tree)

    def verify(staged: Path, info: BentoInfo) -> None:
        verify_bento(staged, info)
        pinned = sorted(f"{m.name}:{m.version}@{m.digest}" for m in info.models)
        carried = sorted(f"{i.name}:{i.version}@{i.digest}" for i in
                         (ModelInfo.load(d / "model.yaml") for d in (staged / MODEL_COPIES).glob("*/*")))
        if pinned != carried or sorted(claimed) != pinned:
            raise ArchiveError(f"{target}: the bento pins {pinned}, carries {carried}, the manifest says {claimed}")

    return restore_models(store, import_staged(store, fill, BentoInfo.load, verify, target))

