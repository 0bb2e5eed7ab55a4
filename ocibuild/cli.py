"""The `ocibuild` command: parses arguments, calls one function, prints. No logic lives here."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

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
    import logging

    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    ctx.obj = Context(verbose)


def image_options(command):
    """The options that say how an image is written or pushed: `containerize`'s, and `build --containerize`'s."""
    for option in reversed([
        click.option("-o", "--output", "output", type=click.Path(path_type=Path), help="Where to write (default: ./NAME-VERSION.tar, or ./NAME-VERSION for oci-dir; nothing with --push)."),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default="archive", show_default=True),
        click.option("--compression", type=click.Choice(["gzip", "zstd", "none"]), default="gzip", show_default=True),
        click.option("--image-tag", metavar="REPO:TAG", help="The image's name (default: NAME:VERSION)."),
        click.option("--base", metavar="REF", help="Base image instead of the bento's: a registry reference, oci-layout:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE."),
        click.option("--load", is_flag=True, help="Load the image into the local Docker engine."),
        click.option("--push", "push_to", metavar="REF", help="Push the image to a registry."),
    ]):
        command = option(command)
    return command


@cli.command()
@click.argument("path", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--service", "entry_point", metavar="MODULE:CLASS", help="The service to build (default: the one in service.py).")
@click.option("--version", "version", help="The bento version (default: generated, ordered by time).")
@click.option("--platform", default="linux/amd64", show_default=True, help="Target platform for the locked dependencies.")
@click.option("--refresh", is_flag=True, help="Resolve the Python and Debian locks again, even if their inputs did not change.")
@click.option("--containerize", "then_containerize", is_flag=True, help="Then build the image, in the same process (with the image options below).")
@image_options
@click.pass_obj
def build(obj, path, entry_point, version, platform, refresh, then_containerize, **image):
    """Package the service in PATH into a bento (and, with --containerize, into an image)."""
    from ocibuild.bento.build import build_bento
    from ocibuild.oci.platform import Platform

    given = [f"--{name.replace('_', '-')}" for name, value in image.items() if value not in (None, False, "archive", "gzip")]
    if given and not then_containerize:
        raise click.UsageError(f"{', '.join(given)} only apply with --containerize")
    bento = build_bento(path, obj.bentos(), entry_point=entry_point, version=version,
                        platform=Platform.target(platform), refresh=refresh)
    click.echo(f"Built bento {bento.tag}")
    if then_containerize:
        make_image(obj, bento, platform=None, **image)


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
    import yaml

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
@image_options
@click.option("--platform", help="Target platform (default: the one the bento was locked for).")
@click.pass_obj
def containerize(obj, tag, platform, **image):
    """Build an OCI image from a bento, without a Docker daemon."""
    make_image(obj, obj.bentos().get(tag), platform=platform, **image)


def make_image(obj, bento, output, fmt, compression, image_tag, base, platform, load, push_to):
    from ocibuild.base import Sources
    from ocibuild.containerize import ContainerizeOptions, containerize, source_date_epoch
    from ocibuild.layers.compression import Compression
    from ocibuild.oci.platform import Platform
    from ocibuild.oci.reference import Reference
    from ocibuild.publish import ArchivePublisher, DockerPublisher, LayoutPublisher, RegistryPublisher

    if load and fmt != "archive":
        raise click.UsageError("--load needs --format archive")
    name = Reference.image_name(image_tag or f"{bento.info.name}:{bento.info.version}")
    publishers = [RegistryPublisher(Reference.parse(push_to), obj.registries, obj.blobs)] if push_to else []
    if output or load or not push_to:
        dest = output or Path(f"{bento.info.name}-{bento.info.version}" + (".tar" if fmt == "archive" else ""))
        publishers.append(DockerPublisher(name, dest) if load else
                          ArchivePublisher(dest, name) if fmt == "archive" else LayoutPublisher(dest, name))
    options = ContainerizeOptions(Platform.target(platform) if platform else None, Compression(compression), base,
                                  source_date_epoch())
    step = (lambda s: click.echo(f"==> {s}", err=True)) if sys.stderr.isatty() else (lambda s: None)
    image = containerize(bento, options, Sources(obj.registries, obj.blobs, obj.home), step)
    for publisher in publishers:
        click.echo(publisher.publish(image).message)


@cli.command("push")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("ref")
@click.pass_obj
def push_(obj, source, ref):
    """Push an image or index from an archive or OCI layout written by containerize to a registry."""
    from ocibuild.formats.layout import read_image
    from ocibuild.oci.reference import Reference
    from ocibuild.publish import RegistryPublisher

    target = Reference.parse(ref)
    root = read_image(source, "oci-layout" if source.is_dir() else "oci-archive", None, None, obj.blobs)
    click.echo(RegistryPublisher(target, obj.registries, obj.blobs).publish(root).message)


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
    import yaml

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
