"""The `ocibuild` command: parses arguments, calls one function, prints. No logic lives here."""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import sys
from pathlib import Path

import click
from click.core import ParameterSource

import ocibuild
from ocibuild.contract import ocibuild_home
from ocibuild.errors import ImageError, OcibuildError

# Output formats, named as the transports that read them (`oci-archive:`, `oci-layout:`); the
# first names ocibuild gave them stay accepted.
FORMATS = {"oci-archive": "oci-archive", "oci-layout": "oci-layout", "archive": "oci-archive", "oci-dir": "oci-layout"}


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


def usage_error(exc: click.UsageError):
    """A usage error is one line too, with where to read the usage (click prints four); a bare
    `ocibuild` or `ocibuild models` still shows the help, as click does."""
    if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):  # click 8.2 and later
        exc.show()
        sys.exit(exc.exit_code)
    command = exc.ctx.command_path if exc.ctx is not None else "ocibuild"
    click.echo(f"error: {' '.join(exc.format_message().split())} (see `{command} --help`)", err=True)
    sys.exit(exc.exit_code)


class OcibuildGroup(click.Group):
    """Turns failures into one line on stderr and an exit code; tracebacks only with --verbose."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:  # `ocibuild --bogus`
            usage_error(exc)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a subcommand's arguments, or an unknown subcommand
            usage_error(exc)
        except (Exception, KeyboardInterrupt) as exc:
            if not expected(exc) or ctx.params.get("verbose"):
                raise
            sys.exit(report_failure(exc))


def expected(exc: BaseException) -> bool:
    """A failure the user can act on, said in one line; anything else is a bug, with its traceback."""
    requests = sys.modules.get("requests")
    return isinstance(exc, (OcibuildError, OSError, ValueError, KeyboardInterrupt)
                      + ((requests.RequestException,) if requests else ()))


def report_failure(exc: BaseException) -> int:
    """Say what went wrong on one line of stderr; the exit code it gives."""
    if isinstance(exc, KeyboardInterrupt):
        click.echo("error: interrupted", err=True)
        return 130
    click.echo("error: " + one_line(exc), err=True)
    return exc.exit_code if isinstance(exc, OcibuildError) else 1


@click.group(cls=OcibuildGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(ocibuild.__version__, prog_name="ocibuild")
@click.option("-v", "--verbose", is_flag=True, help="Show debug output and tracebacks.")
@click.pass_context
def cli(ctx, verbose):
    """Package AI/ML services into bentos and OCI images, without a Docker daemon."""
    import logging

    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    if sys.stderr.isatty():
        from ocibuild.progress import show_bars

        show_bars()
    ctx.obj = Context(verbose)


def image_options(*output_flags: str):
    """The options that say how an image is written or pushed: `containerize`'s, and `build
    --containerize`'s (where `--output` is the record's format, so the image's is `--image-output`)."""
    return lambda command: _with_image_options(command, output_flags)


def _with_image_options(command, output_flags: tuple[str, ...]):
    for option in reversed([
        click.option(*output_flags, "output", type=click.Path(path_type=Path), help="Where to write (default: ./NAME-VERSION.tar, or ./NAME-VERSION for oci-layout; nothing with --push, or a temporary archive with --load)."),
        click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="oci-archive", show_default=True,
                     help="oci-archive: one tar that docker, podman, skopeo and ctr load; oci-layout: a directory."),
        click.option("--compression", type=click.Choice(["gzip", "zstd", "none"]), default="gzip", show_default=True),
        click.option("--image-tag", metavar="REPO:TAG", help="The image's name (default: NAME:VERSION)."),
        click.option("--base", metavar="REF", help="Base image instead of the bento's: a registry reference, oci-layout:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE."),
        click.option("--load", is_flag=True, help="Load the image into the local Docker engine."),
        click.option("--push", "push_to", metavar="REF", help="Push the image to a registry."),
        click.option("--metadata-file", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write what was built, reused, pushed and where, as JSON (see the README)."),
        click.option("--cache-to", "cache_to", metavar="REF", help="Record this build's layers as a registry cache."),
        click.option("--load-platform", metavar="PLATFORM", help="The image docker's manifest.json (and --load) names in a multi-platform archive (default: the host's)."),
        click.option("--sbom-format", type=click.Choice(["spdx", "cyclonedx", "none"]), default="spdx", show_default=True,
                     help="The SBOM attached to each image as a referrer."),
        click.option("--provenance/--no-provenance", default=True, show_default=True,
                     help="Attach a SLSA provenance statement to each image as a referrer."),
        click.option("--provenance-time", is_flag=True, help="Stamp the provenance with the build time (SOURCE_DATE_EPOCH if set, else now)."),
    ]):
        command = option(command)
    return command


@cli.command()
@click.argument("path", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--service", "entry_point", metavar="MODULE:CLASS", help="The service to build (default: the one in service.py).")
@click.option("--version", "version", help="The bento version (default: generated, ordered by time).")
@click.option("--platform", help="Target platform(s) for the locked dependencies, comma-separated "
              "(linux/amd64,linux/arm64; default: this machine's).")
@click.option("--refresh", is_flag=True, help="Resolve the Python and Debian locks again, even if their inputs did not change.")
@click.option("--cache-from", "cache_from", multiple=True, metavar="REF",
              help="Reuse Python and Debian locks recorded in a registry cache when their inputs are unchanged "
                   "(with --containerize, its layers too).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the tag: `TAG=$(ocibuild build -q)`.")
@click.option("--output", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: the bento's record (bento.yaml) with its tag and path, on stdout.")
@click.option("--containerize", "then_containerize", is_flag=True, help="Then build the image, in the same process (with the image options below).")
@click.option("--watch", is_flag=True, help="Build again after every change to the files the bento collects, until Ctrl-C.")
@image_options("--image-output")
@click.pass_obj
def build(obj, path, entry_point, version, platform, refresh, cache_from, quiet, output_format, then_containerize,
          watch, **image):
    """Package the service in PATH into a bento (and, with --containerize, into an image)."""
    from ocibuild.oci.platform import host_platform

    context = click.get_current_context()
    given = [flag_given(param, image[param.name]) for param in context.command.params
             if param.name in image and context.get_parameter_source(param.name) != ParameterSource.DEFAULT]
    if quiet and output_format == "json":
        raise click.UsageError("-q and --output json each say what stdout gets: give one")
    if given and not then_containerize:
        raise click.UsageError(f"{', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} with --containerize")
    targets = platform_list(platform) if platform is not None else [host_platform()]
    if then_containerize:  # before the bento is stored: it would be kept for an image never made
        check_image_options(targets, **image)
    run = functools.partial(build_once, obj, path, entry_point, version, targets, refresh, cache_from, quiet,
                            output_format, image if then_containerize else None, json_lines=watch)
    if not watch:
        return run()
    from ocibuild.watch import watch as watch_builds

    check_watch_options(path, version, image if then_containerize else None)
    watch_builds(path, functools.partial(run_reporting, run, obj.verbose), lambda line: click.echo(line, err=True),
                 skip=[obj.home])


def check_watch_options(path: Path, version: str | None, image: dict | None) -> None:
    """What `--watch` cannot do: one version for many builds, or an image output that lands where
    the next build collects it (each build would then start another, with the last image inside)."""
    from ocibuild.watch import collected_changes

    if version:
        raise click.UsageError("--watch builds a new version for every change: --version names one")
    if image is None:
        return
    if not (image["output"] or image["push_to"] or image["load"]):
        raise click.UsageError("--watch --containerize needs --image-output, --push or --load: "
                               "every build would leave another NAME-VERSION.tar here")
    output = image["output"]
    written = output / "index.json" if output and FORMATS[image["fmt"]] == "oci-layout" else output  # a layout's files
    for flag, target, probe in (("--image-output", output, written),
                                ("--metadata-file", image["metadata_file"], image["metadata_file"])):
        if target and collected_changes(path.resolve(), [str(probe.resolve())]):  # links and `..` followed
            raise click.UsageError(f"{flag} {target} is in {path}, where the next build would collect it: "
                                   "write it elsewhere, or add it to .bentoignore")


def run_reporting(work, verbose: bool) -> int:
    """`work()`'s exit code: 0, or its failure's, said as the command line says it."""
    try:
        work()
        return 0
    except (Exception, KeyboardInterrupt) as exc:
        if not expected(exc) or verbose:
            import traceback  # only a watch's build gets here: not at every command's start

            traceback.print_exc()
            return 130 if isinstance(exc, KeyboardInterrupt) else 1
        return report_failure(exc)


def build_once(obj, path, entry_point, version, targets, refresh, cache_from, quiet, output_format, image,
               json_lines=False):
    """One `build` (`image`: the image options, with --containerize; `json_lines`: a record on one
    line, as a watch prints one per build)."""
    from ocibuild.bento.build import build_bento

    registry_locks = None
    if cache_from and not refresh:
        from ocibuild.bento.lockcache import LockCache
        from ocibuild.registry.cache import open_cache

        registry_locks = LockCache(open_cache(obj.blobs, obj.registries, list(cache_from), needs_bytes=False).locks)

    def prestart(spec):  # the image's compiler starts while the bento is written
        from ocibuild.layers.bytecode import bytecode_for

        bytecode_for(spec.image.python_version).prestart()
    bento = build_bento(path, obj.bentos(), entry_point=entry_point, version=version, platform=targets[0],
                        platforms=tuple(targets), refresh=refresh, registry_locks=registry_locks,
                        loaded_hook=prestart if image is not None else None)
    references = None
    if image is not None:
        # a bento is whole before its image is begun: if the image fails, it stays (this line says
        # so) for `ocibuild containerize TAG` to try again without building it again
        click.echo(f"Built bento {bento.tag}", err=True)
        references = make_image(obj, bento, platform=None, cache_from=cache_from, **image)
    # stdout, once the whole command has succeeded: the tag or the record, then the image's references
    if output_format == "json":
        record = {"tag": str(bento.tag), "path": str(bento.path), **bento.info.to_dict()}
        click.echo(json.dumps(record if references is None else {**record, "image": {"references": references}},
                              indent=None if json_lines else 2))
        return
    if quiet or image is None:
        click.echo(str(bento.tag) if quiet else f"Built bento {bento.tag}")
    for reference in references or []:
        click.echo(reference)


@cli.command("list")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def list_(obj, output):
    """List the bentos in the store, newest first."""
    from ocibuild.report import human_size

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
    click.echo(json.dumps(info, indent=2) + "\n" if output == "json" else yaml.safe_dump(info, sort_keys=False), nl=False)


@cli.command()
@click.argument("tags", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def delete(obj, tags, yes):
    """Delete bentos."""
    delete_entries(obj.bentos(), tags, yes)


@cli.command("export")
@click.argument("tag")
@click.argument("file")
@click.pass_obj
def export_(obj, tag, file):
    """Write a bento to one archive file, or push it as an OCI artifact to oci://HOST/REPO:TAG."""
    from ocibuild.artifacts import bento_artifact, is_oci, push_artifact
    from ocibuild.bento.archive import export_bento

    bento = obj.bentos().get(tag)
    if is_oci(file):
        report = push_artifact(bento_artifact(bento, obj.blobs), file, obj.registries, obj.blobs)
        click.echo(f"Exported {bento.tag} to {report.summary()}")
        return
    export_bento(bento, Path(file))
    click.echo(f"Exported {bento.tag} to {file}")


class Size(click.ParamType):
    """A byte count: `1048576`, or with a binary suffix `512K`, `20M`, `64G`, `1T` (case-insensitive)."""

    name = "SIZE"
    UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("IB").removesuffix("B")
        number, unit = (text[:-1], text[-1]) if text[-1:] in self.UNITS else (text, "")
        if not number.isdigit() or int(number) == 0:
            self.fail(f"{value!r} is not a size: expected bytes, or a number with K, M, G or T", param, ctx)
        return int(number) * self.UNITS[unit]


def extract_limits(command):
    """`--max-archive-size/-members/-file-size`: the ceilings an archive import enforces."""
    from ocibuild.store.limits import ExtractLimits

    default = ExtractLimits()
    options = [
        click.option("--max-archive-members", type=click.IntRange(min=1), default=default.max_members,
                     show_default=True, help="Refuse an archive with more members."),
        click.option("--max-archive-file-size", type=Size(), default=default.max_file_bytes, show_default=True,
                     help="Refuse an archive with a larger file (bytes, or K/M/G/T)."),
        click.option("--max-archive-size", type=Size(), default=default.max_total_bytes, show_default=True,
                     help="Refuse an archive that holds more bytes in all (bytes, or K/M/G/T)."),
    ]
    for option in options:
        command = option(command)
    return command


def limits_of(max_archive_size: int, max_archive_members: int, max_archive_file_size: int):
    from ocibuild.store.limits import ExtractLimits

    return ExtractLimits(max_members=max_archive_members, max_file_bytes=max_archive_file_size,
                         max_total_bytes=max_archive_size)


@cli.command("import")
@click.argument("file")
@extract_limits
@click.pass_obj
def import_(obj, file, max_archive_size, max_archive_members, max_archive_file_size):
    """Add a bento from an archive made by `ocibuild export`, or from oci://HOST/REPO:TAG."""
    from ocibuild.artifacts import import_bento_artifact, is_oci
    from ocibuild.bento.archive import import_bento

    limits = limits_of(max_archive_size, max_archive_members, max_archive_file_size)
    if is_oci(file):
        bento = import_bento_artifact(obj.bentos(), file, obj.registries, obj.blobs, limits)
    else:
        bento = import_bento(obj.bentos(), existing(file, "FILE"), limits)
    click.echo(f"Imported {bento.tag}")


def existing(name: str, hint: str) -> Path:
    if not Path(name).exists():
        raise click.BadParameter(f"{name!r} does not exist", param_hint=f"'{hint}'")
    return Path(name)


@cli.command()
@click.argument("tag")
@image_options("-o", "--output")
@click.option("--platform", help="Target platform(s), comma-separated (default: every platform the bento was locked for); several give an image index.")
@click.option("--cache-from", "cache_from", multiple=True, metavar="REF",
              help="Reuse layers recorded in a registry cache (repeatable); their bytes stay in the registry.")
@click.pass_obj
def containerize(obj, tag, platform, **image):
    """Build an OCI image (or a multi-platform index) from a bento, without a Docker daemon.

    stdout gets the image's reference only (with --push, the pushed REGISTRY/REPO@DIGEST last);
    everything else goes to stderr."""
    for reference in make_image(obj, obj.bentos().get(tag), platform=platform, **image):
        click.echo(reference)


def check_image_options(targets, *, fmt, image_tag, base, load_platform, load, push_to, metadata_file, cache_to,
                        **_others) -> None:
    """What can be wrong in the image options whatever is built, refused before any work
    (`targets`: the platforms the image is for)."""
    from ocibuild.base import check_reference
    from ocibuild.oci.platform import Platform
    from ocibuild.oci.reference import Reference

    if load and FORMATS[fmt] != "oci-archive":
        raise click.UsageError("--load needs --format oci-archive")
    if image_tag:
        Reference.image_name(image_tag)
    for reference in (push_to, cache_to):
        if reference:
            Reference.parse(reference)
    if base:
        check_reference(base)
    if load_platform:
        loadable = Platform.target(load_platform)
        if str(loadable) not in [str(p) for p in targets]:
            raise click.UsageError(f"--load-platform {loadable} is not one of the platforms built")
    if metadata_file and metadata_file.is_dir():
        raise click.BadParameter(f"{metadata_file} is a directory", param_hint="'--metadata-file'")


def make_image(obj, bento, output, fmt, compression, image_tag, base, platform, load_platform, load, push_to,
               metadata_file, cache_from, cache_to, sbom_format, provenance, provenance_time):
    from ocibuild.background import Background
    from ocibuild.base import Sources
    from ocibuild.containerize import ContainerizeOptions, containerize_platforms, locked_platforms, source_date_epoch
    from ocibuild.layers.bytecode import bytecode_for
    from ocibuild.layers.compression import Compression
    from ocibuild.oci.platform import Platform, host_platform
    from ocibuild.oci.reference import Reference
    from ocibuild.publish import ArchivePublisher, DockerPublisher, LayoutPublisher, RegistryPublisher, check_writable
    from ocibuild.report import Steps, layer_records, metadata, summary
    from ocibuild.store.atomic import TempFile
    from ocibuild.supplychain.attach import SupplyChainOptions, find_wheels, finish_wheels, referrers, remember_wheels

    targets = platform_list(platform) if platform is not None else None
    check_image_options(targets or list(bento.info.targets), fmt=fmt, image_tag=image_tag, base=base,
                        load_platform=load_platform, load=load, push_to=push_to, metadata_file=metadata_file,
                        cache_to=cache_to)
    fmt = FORMATS[fmt]
    name = Reference.image_name(image_tag or f"{bento.info.name}:{bento.info.version}")
    loadable = Platform.target(load_platform) if load_platform else host_platform()
    epoch = source_date_epoch()
    options = ContainerizeOptions(None, Compression(compression), base, epoch)
    bytecode_for(bento.info.python_version).prestart()  # starts while the image's inputs are looked up
    steps = Steps(lambda line: click.echo(line, err=True))
    blobs = obj.blobs
    local_output = bool(output or load or not push_to)
    loaded_only = load and output is None  # into the engine through a temporary archive: no file to write
    if cache_from or cache_to:
        from ocibuild.registry.cache import open_cache

        blobs = open_cache(obj.blobs, obj.registries, list(cache_from), needs_bytes=local_output)
        if sbom_format != "none":
            from ocibuild.supplychain.records import restore_sbom_records

            restore_sbom_records(bento, obj.home, blobs.locks)
    # opened before the image is built: a metadata file that cannot be written fails before any output
    with TempFile(metadata_file.absolute().parent) if metadata_file else contextlib.nullcontext() as meta:
        with Background(1) as pool:  # the SBOM's network questions, asked while the layers are written
            wheels = pool.submit(find_wheels, bento, targets or locked_platforms(bento),
                                 obj.home if sbom_format != "none" else None)
            root = containerize_platforms(bento, options, Sources(obj.registries, blobs, obj.home), targets, steps)
            found = finish_wheels(wheels.result(), obj.home)
            remember_wheels(found)
        images = images_of(root)
        if not any(i.platform.matches(loadable) for i in images) and images:  # not the host's: the first
            loadable = images[0].platform
        publishers = []
        if local_output:
            dest = output or Path(f"{bento.info.name}-{bento.info.version}" + (".tar" if fmt == "oci-archive" else ""))
            publishers.append(DockerPublisher(name, output, loadable) if load else ArchivePublisher(dest, name, loadable)
                              if fmt == "oci-archive" else LayoutPublisher(dest, name))
        if push_to:  # last: its reference is the last line a script reads
            publishers.append(RegistryPublisher(Reference.parse(push_to), obj.registries, blobs))
        steps("supply chain records")
        attached = referrers(root, bento, str(name), obj.blobs, SupplyChainOptions(
            sbom_format, provenance, epoch, base, provenance_time, {"compression": compression}, obj.home, found))
        # the push runs first, though its reference is printed last: a registry that refuses (the
        # likelier failure) then fails the command before any local output is written. What the
        # local outputs need is checked before it; if one still fails, the error says what was pushed.
        if local_output and not loaded_only:
            check_writable(dest)
        if load and push_to:
            from ocibuild.engine import require_engine

            require_engine()
        done, pushed_to = {}, None
        for i in sorted(range(len(publishers)), key=lambda i: not isinstance(publishers[i], RegistryPublisher)):
            steps(f"pushing to {push_to}" if isinstance(publishers[i], RegistryPublisher)
                  else "loading into the Docker engine" if loaded_only else f"writing {dest}")
            try:
                done[i] = publishers[i].publish(root, attached)
            except (OcibuildError, OSError) as exc:
                if pushed_to is None:
                    raise
                raise ImageError(f"pushed {pushed_to}, but {one_line(exc)}") from exc
            if isinstance(publishers[i], RegistryPublisher):
                pushed_to = done[i].reference
        results = [done[i] for i in range(len(publishers))]
        if cache_to:
            from ocibuild.bento.lockcache import lock_entries
            from ocibuild.registry.cache import write_cache

            steps(f"writing the cache {cache_to}")
            from ocibuild.supplychain.records import sbom_records

            blobs.locks.update(lock_entries(bento.path))
            blobs.locks.update(sbom_records(bento, obj.home))
            click.echo(f"Cache: {write_cache(blobs, cache_to, obj.registries).summary()}", err=True)
        steps.end()
        layers = layer_records(root, obj.blobs.created, {d: o for r in results for d, o in r.blobs.items()})
        for result in results:
            click.echo(result.message, err=True)
        click.echo(summary(layers, steps.seconds), err=True)
        if meta is not None:
            pushed = [isinstance(p, RegistryPublisher) for p in publishers]
            record = metadata(root, str(bento.tag), [r.reference for r, p in zip(results, pushed) if p],
                              [r.reference for r, p in zip(results, pushed) if not p], layers, steps.seconds)
            meta.file.write(json.dumps(record, indent=2).encode() + b"\n")
            meta.commit(metadata_file)
        return [result.reference for result in results]


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
    from ocibuild.store.atomic import temp_dir
    from ocibuild.store.blobs import BlobStore

    target = Reference.parse(ref)
    # the blobs pass through a staging store that goes away: a push never fills the cache, and a
    # refused or failed one leaves nothing behind (a killed one is swept by the next run)
    with temp_dir(obj.blobs.tmp) as staging:
        blobs = BlobStore(staging)
        root, attached = read_with_referrers(source, "oci-layout" if source.is_dir() else "oci-archive", blobs)
        published = RegistryPublisher(target, obj.registries, blobs).publish(root, attached)
    click.echo(published.message, err=True)
    click.echo(published.reference)


@cli.command()
@click.argument("registry")
@click.option("-u", "--username", help="Asked for when not given, except with --password-stdin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (needs --username).")
@click.pass_obj
def login(obj, registry, username, password_stdin):
    """Check credentials against REGISTRY and save them (docker config format)."""
    from ocibuild.registry.auth import Credential, login_file, store_login
    from ocibuild.registry.login import check_login

    if username is None:
        if password_stdin:  # a prompt would read the password as the name, and print it in errors
            raise click.UsageError("--password-stdin needs --username")
        username = click.prompt("Username")
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

    global _FREEZE_AT_EXIT
    _FREEZE_AT_EXIT = False
    serve_local(target, obj.bentos(), host, port)


@cli.group()
def models():
    """The local model store."""


@models.command("import")
@click.argument("path")
@click.option("--name", help="Store PATH (a file or directory) as a new version of this model.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="A label (with --name).")
@extract_limits
@click.pass_obj
def models_import(obj, path, name, labels, max_archive_size, max_archive_members, max_archive_file_size):
    """Add a model: PATH as model NAME (--name), an archive from `ocibuild models export`, or oci://HOST/REPO:TAG."""
    from ocibuild.artifacts import import_model_artifact, is_oci
    from ocibuild.report import human_size

    if labels and name is None:  # an archive or artifact carries its own model.yaml, labels included
        raise click.UsageError("--label only applies with --name")
    store = obj.models()
    limits = limits_of(max_archive_size, max_archive_members, max_archive_file_size)
    if name is None and is_oci(path):
        click.echo(f"Imported model {import_model_artifact(store, path, obj.registries, obj.blobs, limits).tag}")
        return
    path = existing(path, "PATH")
    if name is None and Path(path).is_dir():
        raise click.UsageError(f"{path} is a directory: give the model's name, `--name NAME` (an archive "
                               "from `ocibuild models export` names its own)")
    if name is None:
        from ocibuild.bento.archive import import_model

        click.echo(f"Imported model {import_model(store, path, limits).tag}")
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
    from ocibuild.report import human_size

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
    click.echo(json.dumps(info, indent=2) + "\n" if output == "json" else yaml.safe_dump(info, sort_keys=False), nl=False)


@models.command("delete")
@click.argument("tags", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def models_delete(obj, tags, yes):
    """Delete models (bentos keep their own hard-linked copies)."""
    delete_entries(obj.models(), tags, yes)


@models.command("export")
@click.argument("tag")
@click.argument("file")
@click.pass_obj
def models_export(obj, tag, file):
    """Write a model to one archive file, or push it as an OCI artifact to oci://HOST/REPO:TAG."""
    from ocibuild.artifacts import is_oci, model_artifact, push_artifact
    from ocibuild.bento.archive import export_dir

    model = obj.models().get(tag)
    if is_oci(file):
        report = push_artifact(model_artifact(model, obj.blobs), file, obj.registries, obj.blobs)
        click.echo(f"Exported model {model.tag} to {report.summary()}")
        return
    export_dir(model.path, Path(file))
    click.echo(f"Exported model {model.tag} to {file}")


def delete_entries(store, tags, yes: bool) -> None:
    # resolve all first: an unknown tag deletes nothing; two tags of one entry delete it once
    entries = list({str(e.tag): e for e in (store.get(t) for t in tags)}.values())
    if not yes:
        click.confirm(f"Delete {', '.join(str(e.tag) for e in entries)}?", abort=True)
    for entry in entries:
        store.delete(entry.tag)
        click.echo(f"Deleted {store.kind} {entry.tag}")


def flag_given(param: click.Parameter, value) -> str:
    """The flag as the user typed it: `--no-provenance` for a false `--provenance/--no-provenance`."""
    return param.secondary_opts[0] if param.secondary_opts and not value else param.opts[-1]


def platform_list(text: str):
    from ocibuild.oci.platform import Platform

    targets = list(dict.fromkeys(Platform.target(p) for p in text.split(",") if p.strip()))
    if not targets:
        raise click.BadParameter("no platform given", param_hint="'--platform'")
    return targets


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in [headers, *rows])


def _verbose_here(ctx, param, value) -> None:
    """`ocibuild build . --verbose` means `ocibuild --verbose build .`: where people type it
    after an error that says tracebacks come with --verbose."""
    if value:
        import logging

        root = ctx.find_root()
        root.params["verbose"] = True
        if isinstance(root.obj, Context):
            root.obj.verbose = True
        logging.getLogger().setLevel(logging.DEBUG)


def _accept_verbose_anywhere(group: click.Group) -> None:
    for command in group.commands.values():
        command.params.append(click.Option(["-v", "--verbose"], is_flag=True, expose_value=False,
                                           callback=_verbose_here, help="Show debug output and tracebacks."))
        if isinstance(command, click.Group):
            _accept_verbose_anywhere(command)


_accept_verbose_anywhere(cli)

# Whether the process skips the interpreter's final collections on its way out (`main`): `serve`
# clears it, since it ran the service's own code, whose objects (files it left open and unflushed
# among them) get the interpreter's usual exit.
_FREEZE_AT_EXIT = True


def main():
    try:
        cli(prog_name="ocibuild")
    finally:
        # The interpreter's exit would walk every object in full collections only to free memory
        # the process is about to hand back: 27-58 ms of an edit's build here, 4-13 ms frozen.
        # Frozen objects are still released by reference counts as modules are cleared, and
        # atexit handlers run; only objects in reference cycles are left to the kernel.
        if _FREEZE_AT_EXIT:
            gc.freeze()
