"""An SPDX 2.3 JSON SBOM for one platform's image of a bento, from its locks alone.

Every Debian package (name, version, architecture, source package, `pkg:deb` purl, the .deb's
sha256), every Python distribution (`pkg:pypi` purl, the hashes the lock accepts), each model,
the base image when it is not made of the locked Debian packages, and the bento itself, with
relationships from the image (the document's root package) to each. Same inputs, same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import ocibuild
from ocibuild.bento.store import Bento
from ocibuild.errors import TagError
from ocibuild.oci.platform import Platform
from ocibuild.oci.reference import Reference
from ocibuild.supplychain.locks import Locks, read_locks

MEDIA_TYPE = "application/spdx+json"
NAMESPACE = "https://ocibuild.invalid/spdx"  # a namespace, never fetched (.invalid cannot resolve)


@dataclass(frozen=True)
class BaseRef:
    """The base an image was built on (a registry or local image), by digest."""

    name: str
    digest: str


def created(bento: Bento, source_date_epoch: int | None) -> str:
    moment = datetime.fromtimestamp(source_date_epoch, UTC) if source_date_epoch is not None \
        else bento.info.created_at.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _id(kind: str, *parts: str) -> str:
    return "SPDXRef-" + kind + "-" + re.sub(r"[^A-Za-z0-9.-]", "-", "-".join(parts))


def _purl_version(version: str) -> str:
    return quote(version, safe=".-_~")


def _package(spdx_id: str, name: str, version: str, purl: str | None, *, checksums=(), supplier: str | None = None,
             purpose: str | None = None, source: str | None = None, comment: str | None = None) -> dict:
    package = {"SPDXID": spdx_id, "name": name, "versionInfo": version, "downloadLocation": "NOASSERTION",
               "filesAnalyzed": False, "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
               "copyrightText": "NOASSERTION"}
    if purl:
        package["externalRefs"] = [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                    "referenceLocator": purl}]
    if checksums:
        package["checksums"] = [{"algorithm": "SHA256", "checksumValue": c} for c in checksums]
    if supplier:
        package["supplier"] = supplier
    if purpose:
        package["primaryPackagePurpose"] = purpose
    if source:
        package["sourceInfo"] = source
    if comment:
        package["comment"] = comment
    return package


def valid_spdx_expression(expression: str) -> bool:
    """Only SPDX license identifiers go in licenseDeclared (checked with `license-expression`, a
    dependency: were it optional, the same inputs would give other SBOM bytes where it is absent)."""
    from license_expression import get_spdx_licensing

    try:
        return not get_spdx_licensing().validate(expression).errors
    except Exception:  # noqa: BLE001  (a malformed expression from a package's metadata)
        return False


def base_purl(base: BaseRef) -> str | None:
    """`pkg:oci/NAME@DIGEST` for a base named by a registry reference (the port of its registry is
    not a tag); a local base, named without its path, has none."""
    try:
        repository = Reference.parse(base.name).repository
    except TagError:
        return None
    return f"pkg:oci/{quote(repository.rsplit('/', 1)[-1])}@{quote(base.digest)}"


def source_package(filename: str, name: str) -> str:
    """A pool path is `pool/COMPONENT/PREFIX/SOURCE/FILE.deb`: the directory is the source package."""
    parts = filename.split("/")
    return parts[-2] if len(parts) >= 4 and parts[0] == "pool" else name


def spdx_document(bento: Bento, platform: Platform, *, base: BaseRef | None = None,
                  source_date_epoch: int | None = None, locks: Locks | None = None,
                  deb_licenses: Callable[[object], tuple[str, ...]] | None = None,
                  wheels: dict[str, dict] | None = None) -> dict:
    """`deb_licenses(package)`: the licenses a Debian package's copyright file names (see
    `licenses.deb_license_finder`); their Debian short names go into `licenseComments`, the
    declared license staying NOASSERTION (they are not SPDX identifiers). `wheels` (see
    `wheels.selected_wheels`): the wheel file and sha256 each distribution is installed from."""
    info = bento.info
    locks = locks or read_locks(bento, platform)
    image_id = _id("Image", info.name, info.version, str(platform))
    packages = [_package(image_id, f"{info.name}:{info.version}", info.version, None, purpose="CONTAINER",
                         comment=f"the OCI image of bento {info.name}:{info.version} for {platform}")]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": image_id}]

    def contains(package: dict) -> None:
        packages.append(package)
        relationships.append({"spdxElementId": image_id, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": package["SPDXID"]})

    bento_id = _id("Bento", info.name, info.version)
    contains(_package(bento_id, info.name, info.version, None, purpose="APPLICATION",
                      comment=f"ocibuild bento {info.name}:{info.version}, service {info.service}"))
    if base is not None:
        algorithm, _, hexdigest = base.digest.partition(":")
        packages.append(_package(_id("Base", hexdigest[:16]), base.name, base.digest, base_purl(base),
                                 checksums=[hexdigest] if algorithm == "sha256" else (), purpose="CONTAINER",
                                 comment="the base image"))
        relationships.append({"spdxElementId": image_id, "relationshipType": "DESCENDANT_OF",
                              "relatedSpdxElement": packages[-1]["SPDXID"]})
    for section, debs in locks.debian_sections(on_foreign_base=base is not None):
        for deb in debs:
            purl = (f"pkg:deb/debian/{quote(deb.name)}@{_purl_version(deb.version)}"
                    f"?arch={deb.architecture}&distro={locks.debian.release}")
            package = _package(_id("Deb", deb.name, deb.architecture), deb.name, deb.version, purl,
                               checksums=[deb.sha256], supplier="Organization: Debian", purpose="LIBRARY",
                               source=f"Debian source package {source_package(deb.filename, deb.name)}; "
                                      f"architecture {deb.architecture}; {section} layer")
            stated = deb_licenses(deb) if deb_licenses else ()
            if stated:
                package["licenseComments"] = ("licenses named by the package's copyright file (Debian short "
                                              "names): " + "; ".join(stated))
            contains(package)
    for dist in locks.python:
        purl = f"pkg:pypi/{quote(dist.name.lower().replace('_', '-'))}@{_purl_version(dist.version)}"
        wheel = (wheels or {}).get(re.sub(r"[-_.]+", "-", dist.name).lower())
        if wheel and wheel["sha256"] in dist.hashes:  # the one wheel installed for this platform
            checksums, comment = [wheel["sha256"]], f"installed from {wheel['file']}"
            purl += f"?file_name={quote(wheel['file'])}"
        elif len(dist.hashes) == 1:
            checksums, comment = dist.hashes, None
        else:
            checksums, comment = (), (f"the lock accepts {len(dist.hashes)} files (one per wheel tag); the wheel "
                                      f"for {platform} is one of them (sha256): " + " ".join(dist.hashes))
        package = _package(_id("PyPI", dist.name), dist.name, dist.version, purl, checksums=checksums,
                           purpose="LIBRARY", comment=comment)
        stated = (wheel or {}).get("license") or {}
        if stated:
            package["licenseComments"] = "the wheel's METADATA: " + "; ".join(
                f"{k} {', '.join(v) if isinstance(v, list) else v}" for k, v in sorted(stated.items()) if k != "spdx")
            if stated.get("expression") and stated.get("spdx"):
                package["licenseDeclared"] = stated["expression"]
        contains(package)
    for model in info.models:
        algorithm, _, hexdigest = model.digest.partition(":")
        contains(_package(_id("Model", model.name, model.version), model.name, model.version, None,
                          checksums=[hexdigest] if algorithm == "sha256" else (), purpose="OTHER",
                          comment=f"ocibuild model {model.name}:{model.version} (content digest {model.digest})"))
    document = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{info.name}-{info.version}-{platform}".replace("/", "-"),
        "creationInfo": {"created": created(bento, source_date_epoch),
                         "creators": [f"Tool: ocibuild-{ocibuild.__version__}"]},
        "packages": packages,
        "relationships": relationships,
    }
    # The namespace must be unique per document: derived from the content, so it stays deterministic.
    fingerprint = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    document["documentNamespace"] = f"{NAMESPACE}/{info.name}/{info.version}/{str(platform).replace('/', '-')}/{fingerprint}"
    return document


def spdx_bytes(document: dict) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"
