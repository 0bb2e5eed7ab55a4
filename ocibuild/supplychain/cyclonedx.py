"""A CycloneDX 1.6 JSON SBOM, from the same records as the SPDX one, with cyclonedx-python-lib
for the model, the serialization and the schema validation. Deterministic: the serial number is
derived from the content and the timestamp is the image's `created`."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime

import ocibuild
from ocibuild.bento.store import Bento
from ocibuild.errors import SpecError
from ocibuild.oci.platform import Platform
from ocibuild.supplychain.locks import read_locks
from ocibuild.supplychain.spdx import BaseRef, created, source_package

MEDIA_TYPE = "application/vnd.cyclonedx+json"


def cyclonedx_bytes(bento: Bento, platform: Platform, *, base: BaseRef | None = None,
                    source_date_epoch: int | None = None, wheels: dict[str, dict] | None = None) -> bytes:
    try:
        from cyclonedx.model import HashAlgorithm, HashType, Property
        from cyclonedx.model.bom import Bom
        from cyclonedx.model.component import Component, ComponentType
        from cyclonedx.output.json import JsonV1Dot6
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
        from packageurl import PackageURL
    except ImportError:
        raise SpecError("--sbom-format cyclonedx needs cyclonedx-python-lib: pip install 'ocibuild[cyclonedx]'") from None

    info = bento.info
    locks = read_locks(bento, platform)
    bom = Bom()
    bom.metadata.timestamp = datetime.fromisoformat(created(bento, source_date_epoch).replace("Z", "+00:00"))
    bom.metadata.component = root = Component(
        name=info.name, version=info.version, type=ComponentType.CONTAINER, bom_ref=f"image:{info.name}:{info.version}",
        properties=[Property(name="ocibuild:platform", value=str(platform)),
                    Property(name="ocibuild:version", value=ocibuild.__version__)])
    components = [Component(name=info.name, version=info.version, type=ComponentType.APPLICATION,
                            bom_ref=f"bento:{info.name}:{info.version}")]
    if base is not None:
        algorithm, _, hexdigest = base.digest.partition(":")
        components.append(Component(name=base.name, version=base.digest, type=ComponentType.CONTAINER,
                                    bom_ref=f"base:{base.digest}",
                                    hashes=[HashType(alg=HashAlgorithm.SHA_256, content=hexdigest)]
                                    if algorithm == "sha256" else []))
    for _, debs in locks.debian_sections(on_foreign_base=base is not None):
        for deb in debs:
            purl = PackageURL("deb", "debian", deb.name, deb.version,
                              {"arch": deb.architecture, "distro": locks.debian.release})
            components.append(Component(
                name=deb.name, version=deb.version, type=ComponentType.LIBRARY, purl=purl, bom_ref=purl.to_string(),
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=deb.sha256)],
                properties=[Property(name="debian:source", value=source_package(deb.filename, deb.name)),
                            Property(name="debian:architecture", value=deb.architecture)]))
    for dist in locks.python:
        wheel = (wheels or {}).get(re.sub(r"[-_.]+", "-", dist.name).lower())
        installed = [wheel["sha256"]] if wheel and wheel["sha256"] in dist.hashes else \
            list(dist.hashes) if len(dist.hashes) == 1 else []
        purl = PackageURL("pypi", None, dist.name.lower().replace("_", "-"), dist.version,
                          {"file_name": wheel["file"]} if installed and wheel else None)
        components.append(Component(
            name=dist.name, version=dist.version, type=ComponentType.LIBRARY, purl=purl, bom_ref=purl.to_string(),
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=h) for h in installed],
            properties=[] if installed else [Property(name="ocibuild:locked-sha256", value=h) for h in dist.hashes]))
    for model in info.models:
        components.append(Component(name=model.name, version=model.version, type=ComponentType.DATA,
                                    bom_ref=f"model:{model.name}:{model.version}",
                                    properties=[Property(name="ocibuild:content-digest", value=model.digest)]))
    for component in components:
        bom.components.add(component)
    bom.register_dependency(root, components)
    bom.serial_number = uuid.UUID(int=0)
    draft = JsonV1Dot6(bom).output_as_string()
    bom.serial_number = uuid.UUID(hashlib.sha256(draft.encode()).hexdigest()[:32], version=5)
    text = JsonV1Dot6(bom).output_as_string()
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if errors:
        raise SpecError(f"the CycloneDX SBOM does not validate: {errors}")
    return json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"
