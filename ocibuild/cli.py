"""The `ocibuild` command: parses arguments, calls one function, prints. No logic lives here."""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path

import click
import yaml

import ocibuild
from ocibuild.contract import ocibuild_home
from ocibuild.errors import OcibuildError

FORMATS = ("archive", "oci-dir")


class Context:
    def __init__(self, verbose: bool):
        self.verbose = verbose
        self.home = ocibuild_home()

    def bentos(self):
        from ocibuild.bento.store import BentoStore

        return BentoStore(self.home)

    def models(self):
        from ocibuild.models.store import ModelStore

        return ModelStore(self.home)

    @functools.cached_property
    def blobs(self):
        from ocibuild.store.blobs import BlobStore

        return BlobStore(self.home / "cache")

    @functools.cached_property
    def registries(self):
        """One set of registry connections per command, so tokens are reused."""
        from ocibuild.registry.session import Registries

        return Registries.from_home(self.home)


def one_line(exc: BaseException) -> str:
    """What went wrong, in one line: our own errors say it; others name the file or the call."""
    if isinstance(exc, OcibuildError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        names = " -> ".join(str(n) for n in (exc.filename, exc.filename2) if n is not None)
        text = f"{exc.strerror}{': ' + names if names else ''}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


class OcibuildGroup(click.Group):
    """Turns failures into one line on stderr and an exit code; tracebacks only with --verbose."""

    def invoke(self, ctx):
        requests = sys.modules.get("requests")
        expected = (OcibuildError, OSError, ValueError) + ((requests.RequestException,) if requests else ())
        try:
            return super().invoke(ctx)
        except expected as exc:
            if ctx.params.get("verbose"):
                raise
            click.echo("error: " + one_line(exc), err=True)
            sys.exit(exc.exit_code if isinstance(exc, OcibuildError) else 1)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(130)


@click.group(cls=OcibuildGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(ocibuild.__version__, prog_name="ocibuild")
@click.option("-v", "--verbose", is_flag=True, help="Show debug output and tracebacks.")
@click.pass_context
def cli(ctx, verbose):
    """Package AI/ML services into bentos and OCI images, without a Docker daemon."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    ctx.obj = Context(verbose)


@cli.command()
@click.argument("path", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--service", "entry_point", metavar="MODULE:CLASS", help="The service to build (default: the one in service.py).")
@click.option("--version", "version", help="The bento version (default: generated, ordered by time).")
@click.option("--platform", help="Target platform(s) for the locked dependencies, comma-separated "
              "(linux/amd64,linux/arm64; default: this machine's).")
@click.pass_obj
def build(obj, path, entry_point, version, platform):
    """Package the service in PATH into a bento."""
    from ocibuild.bento.build import build_bento
    from ocibuild.oci.platform import host_platform

    targets = platform_list(platform) if platform else [host_platform()]
    bento = build_bento(path, obj.bentos(), entry_point=entry_point, version=version,
                        platform=targets[0], platforms=tuple(targets))
    click.echo(f"Built bento {bento.tag}")


@cli.command("list")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def list_(obj, output):
    """List the bentos in the store, newest first."""
    rows = [{"tag": str(b.tag), "size": b.size(), "created": b.info.created} for b in obj.bentos().list()]
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(table(["TAG", "SIZE", "CREATED"],
                     [[r["tag"], human_size(r["size"]), r["created"][:19].replace("T", " ")] for r in rows]))


@cli.command()
@click.argument("tag")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.pass_obj
def get(obj, tag, output):
    """Show a bento's bento.yaml."""
    info = obj.bentos().get(tag).info.to_dict()
    click.echo(json.dumps(info, indent=2) if output == "json" else yaml.safe_dump(info, sort_keys=False), nl=False)


@cli.command()
@click.argument("tags", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def delete(obj, tags, yes):
    """Delete bentos."""
    delete_entries(obj.bentos(), tags, yes)


@cli.command("export")
@click.argument("tag")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def export_(obj, tag, file):
    """Write a bento to one archive file."""
    from ocibuild.bento.archive import export_bento

    bento = obj.bentos().get(tag)
    export_bento(bento, file)
    click.echo(f"Exported {bento.tag} to {file}")


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def import_(obj, file):
    """Add a bento from an archive made by `ocibuild export`."""
    from ocibuild.bento.archive import import_bento

    bento = import_bento(obj.bentos(), file)
    click.echo(f"Imported {bento.tag}")


@cli.command()
@click.argument("tag")
@click.option("-o", "--output", "output", type=click.Path(path_type=Path), help="Where to write (default: ./NAME-VERSION.tar, or ./NAME-VERSION for oci-dir; nothing with --push).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="archive", show_default=True)
@click.option("--compression", type=click.Choice(["gzip", "zstd", "none"]), default="gzip", show_default=True)
@click.option("--image-tag", metavar="REPO:TAG", help="The image's name (default: NAME:VERSION).")
@click.option("--base", metavar="REF", help="Base image instead of the bento's: a registry reference, oci-layout:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE.")
@click.option("--platform", help="Target platform(s), comma-separated (default: every platform the bento was locked for); several give an image index.")
@click.option("--load-platform", metavar="PLATFORM", help="The image docker's manifest.json (and --load) names in a multi-platform archive (default: the host's).")
@click.option("--load", is_flag=True, help="Load the image into the local Docker engine.")
@click.option("--push", "push_to", metavar="REF", help="Push the image to a registry.")
@click.option("--sbom-format", type=click.Choice(["spdx", "cyclonedx", "none"]), default="spdx", show_default=True,
              help="The SBOM attached to each image as a referrer.")
@click.option("--provenance/--no-provenance", default=True, show_default=True,
              help="Attach a SLSA provenance statement to each image as a referrer.")
@click.option("--provenance-time", is_flag=True, help="Stamp the provenance with the build time (SOURCE_DATE_EPOCH if set, else now).")
@click.pass_obj
def containerize(obj, tag, output, fmt, compression, image_tag, base, platform, load_platform, load, push_to,
                 sbom_format, provenance, provenance_time):
    """Build an OCI image (or a multi-platform index) from a bento, without a Docker daemon."""
    from ocibuild.base import Sources
    from ocibuild.containerize import ContainerizeOptions, containerize_platforms, source_date_epoch
    from ocibuild.layers.compression import Compression
    from ocibuild.oci.platform import Platform, host_platform
    from ocibuild.oci.reference import Reference
    from ocibuild.publish import ArchivePublisher, DockerPublisher, LayoutPublisher, RegistryPublisher
    from ocibuild.supplychain.attach import SupplyChainOptions, referrers

    if load and fmt != "archive":
        raise click.UsageError("--load needs --format archive")
    bento = obj.bentos().get(tag)
    name = Reference.image_name(image_tag or f"{bento.info.name}:{bento.info.version}")
    loadable = Platform.target(load_platform) if load_platform else host_platform()
    epoch = source_date_epoch()
    options = ContainerizeOptions(None, Compression(compression), base, epoch)
    step = (lambda s: click.echo(f"==> {s}", err=True)) if sys.stderr.isatty() else (lambda s: None)
    targets = platform_list(platform) if platform else None
    if load_platform and str(loadable) not in [str(p) for p in targets or bento.info.targets]:
        raise click.UsageError(f"--load-platform {loadable} is not one of the platforms built")
    root = containerize_platforms(bento, options, Sources(obj.registries, obj.blobs, obj.home), targets, step)
    images = images_of(root)
    if not any(i.platform.matches(loadable) for i in images) and images:  # not the host's: the first
        loadable = images[0].platform
    publishers = [RegistryPublisher(Reference.parse(push_to), obj.registries, obj.blobs)] if push_to else []
    if output or load or not push_to:
        dest = output or Path(f"{bento.info.name}-{bento.info.version}" + (".tar" if fmt == "archive" else ""))
        publishers.append(DockerPublisher(name, dest, loadable) if load else
                          ArchivePublisher(dest, name, loadable) if fmt == "archive" else LayoutPublisher(dest, name))
    attached = referrers(root, bento, str(name), obj.blobs, SupplyChainOptions(
        sbom_format, provenance, epoch, base, provenance_time, {"compression": compression}, obj.home))
    for publisher in publishers:
        click.echo(publisher.publish(root, attached).message)


def images_of(root):
    from ocibuild.supplychain.attach import images_of as images

    return images(root)


@cli.command()
@click.argument("tag")
@click.option("--platform", help="The platform's SBOM (default: the host's if the bento was locked for it, else its first).")
@click.option("--format", "fmt", type=click.Choice(["spdx", "cyclonedx"]), default="spdx", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE (default: standard output).")
@click.pass_obj
def sbom(obj, tag, platform, fmt, output):
    """Write the SBOM of a bento's image for one platform, from its locks, without building the image."""
    from ocibuild.containerize import source_date_epoch
    from ocibuild.errors import SpecError
    from ocibuild.oci.platform import Platform, host_platform
    from ocibuild.supplychain.attach import sbom_bytes
    from ocibuild.supplychain.locks import default_platform
    from ocibuild.supplychain.spdx import BaseRef

    bento = obj.bentos().get(tag)
    target = Platform.target(platform) if platform else default_platform(bento, host_platform())
    if str(target) not in bento.info.targets:
        raise SpecError(f"bento {bento.tag} was locked for {', '.join(bento.info.targets)}, not {target}")
    base = BaseRef(bento.info.base.reference, bento.info.base.digest) if bento.info.base else None
    data, _ = sbom_bytes(bento, target, fmt, base, source_date_epoch(), obj.home)
    if output is None:
        click.echo(data.decode(), nl=False)
        return
    from ocibuild.store.atomic import write_atomic

    write_atomic(output, data, mode=0o644)
    click.echo(f"SBOM of {bento.tag} for {target} written to {output}", err=True)


@cli.command("push")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("ref")
@click.pass_obj
def push_(obj, source, ref):
    """Push an image or index, and its referrers, from an archive or OCI layout written by containerize."""
    from ocibuild.formats.layout import read_with_referrers
    from ocibuild.oci.reference import Reference
    from ocibuild.publish import RegistryPublisher

    target = Reference.parse(ref)
    root, attached = read_with_referrers(source, "oci-layout" if source.is_dir() else "oci-archive", obj.blobs)
    click.echo(RegistryPublisher(target, obj.registries, obj.blobs).publish(root, attached).message)


@cli.command()
@click.argument("registry")
@click.option("-u", "--username", prompt=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_obj
def login(obj, registry, username, password_stdin):
    """Check credentials against REGISTRY and save them (docker config format)."""
    from ocibuild.registry.auth import Credential, login_file, store_login
    from ocibuild.registry.login import check_login

    password = sys.stdin.readline().rstrip("\n") if password_stdin else click.prompt("Password", hide_input=True)
    credential = Credential(username, password)
    check_login(registry, credential, obj.registries.config)
    path = login_file()
    store_login(registry, credential, path)
    click.echo(f"Login succeeded; credentials for {registry} saved in {path}")


@cli.command()
@click.argument("registry")
def logout(registry):
    """Remove saved credentials for REGISTRY."""
    from ocibuild.registry.auth import login_file, remove_login

    path = login_file()
    if remove_login(registry, path):
        click.echo(f"Removed credentials for {registry} from {path}")
    else:
        click.echo(f"No credentials for {registry} in {path}")


@cli.command()
@click.argument("target", default=".")
@click.option("--port", type=int, help="Port to listen on (default: $PORT or 3000).")
@click.option("--host", default="0.0.0.0", show_default=True)
@click.pass_obj
def serve(obj, target, port, host):
    """Serve a service directory or a bento (TAG) over HTTP on this machine."""
    from ocibuild.bento.run import serve_local

    serve_local(target, obj.bentos(), host, port)


@cli.group()
def models():
    """The local model store."""


@models.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--name", help="Store PATH (a file or directory) as a new version of this model.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="A label (with --name).")
@click.pass_obj
def models_import(obj, path, name, labels):
    """Add a model: PATH as model NAME (--name), or an archive from `ocibuild models export`."""
    store = obj.models()
    if name is None:
        from ocibuild.bento.archive import import_model

        click.echo(f"Imported model {import_model(store, path).tag}")
        return
    parsed = dict(label.split("=", 1) for label in labels if "=" in label)
    if len(parsed) != len(labels):
        raise click.UsageError("--label takes KEY=VALUE")
    model, created = store.import_path(path, name, parsed)
    click.echo(f"{'Imported' if created else 'Unchanged:'} model {model.tag} ({human_size(model.info.size)}, {model.info.digest[:19]})")


@models.command("list")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def models_list(obj, output):
    """List models, newest first."""
    rows = [{"tag": str(m.tag), "size": m.info.size, "created": m.info.created, "digest": m.info.digest}
            for m in obj.models().list()]
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(table(["TAG", "SIZE", "CREATED", "DIGEST"],
                     [[r["tag"], human_size(r["size"]), r["created"][:19].replace("T", " "), r["digest"][:19]] for r in rows]))


@models.command("get")
@click.argument("tag")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.pass_obj
def models_get(obj, tag, output):
    """Show a model's model.yaml."""
    info = obj.models().get(tag).info.to_dict()
    click.echo(json.dumps(info, indent=2) if output == "json" else yaml.safe_dump(info, sort_keys=False), nl=False)


@models.command("delete")
@click.argument("tags", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def models_delete(obj, tags, yes):
    """Delete models (bentos keep their own hard-linked copies)."""
    delete_entries(obj.models(), tags, yes)


@models.command("export")
@click.argument("tag")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def models_export(obj, tag, file):
    """Write a model to one archive file."""
    from ocibuild.bento.archive import export_dir

    model = obj.models().get(tag)
    export_dir(model.path, file)
    click.echo(f"Exported model {model.tag} to {file}")


def delete_entries(store, tags, yes: bool) -> None:
    entries = [store.get(t) for t in tags]  # resolve all first: an unknown tag deletes nothing
    if not yes:
        click.confirm(f"Delete {', '.join(str(e.tag) for e in entries)}?", abort=True)
    for entry in entries:
        store.delete(entry.tag)
        click.echo(f"Deleted {store.kind} {entry.tag}")


def platform_list(text: str):
    from ocibuild.oci.platform import Platform

    return list(dict.fromkeys(Platform.target(p) for p in text.split(",") if p.strip()))


def human_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in [headers, *rows])


def main():
    cli(prog_name="ocibuild")
