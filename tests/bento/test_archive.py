import io
import os
import re
import shutil
import stat
import tarfile
from pathlib import Path

import pytest
import yaml

from ocibuild.bento.archive import export_bento, export_dir, import_bento, import_model
from ocibuild.bento.build import build_bento
from ocibuild.bento.store import BentoStore
from ocibuild.errors import AlreadyExistsError, ArchiveError, OcibuildError
from ocibuild.models.store import ModelStore
from ocibuild.store.extract import ExtractLimits
from tests.conftest import ECHO, Cli, copy_service
from tests.hostile import (
    cve_2025_4517_chain,
    directory,
    file,
    hardlink,
    lying_size_tar,
    make_tar,
    make_victim,
    snapshot,
    special,
    symlink,
)


@pytest.fixture
def built(home, tmp_path):
    store = BentoStore(home)
    return store, build_bento(copy_service(ECHO, tmp_path / "echo"), store, version="1")


def test_round_trip(built, tmp_path, monkeypatch):
    store, bento = built
    archive = tmp_path / "echo.bento"
    export_bento(bento, archive)
    other = BentoStore(tmp_path / "other-home")
    imported = import_bento(other, archive)
    assert imported.info == bento.info
    original = {p.relative_to(bento.path): p.read_bytes() for p in bento.path.rglob("*") if p.is_file()}
    copied = {p.relative_to(imported.path): p.read_bytes() for p in imported.path.rglob("*") if p.is_file()}
    assert copied == original


def test_import_never_overwrites(built, tmp_path):
    store, bento = built
    archive = tmp_path / "echo.bento"
    export_bento(bento, archive)
    before = (bento.path / "bento.yaml").read_bytes()
    with pytest.raises(AlreadyExistsError, match="echo:1 already exists"):
        import_bento(store, archive)
    assert (bento.path / "bento.yaml").read_bytes() == before


def hostile(tmp_path, build_member):
    path = tmp_path / "hostile.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        data = b"name: x\nversion: '1'\n"
        info = tarfile.TarInfo("bento.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        build_member(tar)
    return path


def _file(name):
    def add(tar):
        info = tarfile.TarInfo(name)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    return add


def _link(name, target, kind=tarfile.SYMTYPE):
    def add(tar):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, target
        tar.addfile(info)
    return add


def _device(tar):
    info = tarfile.TarInfo("dev")
    info.type = tarfile.CHRTYPE
    tar.addfile(info)


@pytest.mark.parametrize("member, message", [
    (_file("/etc/evil"), "absolute path"),
    (_file("src/../../evil"), "contains '..'"),
    (_link("src/link", "/etc/passwd"), "points outside"),
    (_link("src/link", "../../outside"), "points outside"),
    (_link("src/hard", "../x", tarfile.LNKTYPE), "contains '..'|points outside"),
    (_device, "device"),
])
def test_hostile_archives_are_refused(home, tmp_path, member, message):
    store = BentoStore(home)
    with pytest.raises(ArchiveError, match=message):
        import_bento(store, hostile(tmp_path, member))
    assert store.list() == []
    assert not (home / "bentos").exists()


def test_archive_with_hostile_name_in_manifest(built, tmp_path):
    store, bento = built
    yaml_text = (bento.path / "bento.yaml").read_text().replace("name: echo", "name: ../../etc", 1)
    path = tmp_path / "bad.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("bento.yaml")
        info.size = len(yaml_text)
        tar.addfile(info, io.BytesIO(yaml_text.encode()))
    with pytest.raises(ArchiveError, match="invalid tag '../../etc:1'"):
        import_bento(BentoStore(tmp_path / "other"), path)
    assert not (tmp_path / "etc").exists()


def test_archive_whose_bento_yaml_is_an_alias_bomb(built, tmp_path):
    """A few hundred bytes that `get` or `list --json` would expand to 9^9 items: refused at import."""
    from tests.store.test_records import alias_bomb

    store, bento = built
    yaml_text = alias_bomb(yaml.safe_load((bento.path / "bento.yaml").read_text()))
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("bento.yaml")
        info.size = len(yaml_text)
        tar.addfile(info, io.BytesIO(yaml_text.encode()))
    other = BentoStore(tmp_path / "other")
    with pytest.raises(OcibuildError, match="YAML aliases are not allowed"):
        import_bento(other, path)
    assert other.list() == [] and not (tmp_path / "other" / "bentos").exists()


def test_corrupt_archive(home, tmp_path):
    path = tmp_path / "corrupt.tar.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ArchiveError, match="cannot read"):
        import_bento(BentoStore(home), path)


# ---- hostile archives through the real import paths (API and CLI, bento and model) ----------
#
# The staging directory is HOME/tmp/KIND-XXXX, so `../../../victim` from inside it is the victim
# directory beside HOME. Each refusal must leave the victim, /etc/passwd and the store exactly as
# they were, and no staging directory behind.

PASSWD = Path("/etc/passwd")
UP = 3  # staging -> HOME/tmp -> HOME -> tmp_path


def _rerouted_later(up):
    # `l` is inside while `a/s` is unknown (a plain dir, lexically); `a/s` -> `..` then sends it out
    return [symlink("l", "a/s/" * up + "../" * up + "victim"), directory("a"), symlink("a/s", "..")]


HOSTILE_IMPORTS = {
    # staging is TMP/home/tmp/KIND-XXXXXXXX, at most 17 characters longer than TMP/victim
    "cve-2025-4517 symlink chain": (lambda victim: cve_2025_4517_chain(UP, "victim", len(str(victim)) + 20),
                                    r"would be written beneath the symlink 'a'"),
    "dotdot member": (lambda victim: [file("../" * UP + "victim/pwned")], r"contains '\.\.'"),
    "absolute member": (lambda victim: [file(str(victim / "pwned"))], r"absolute path '/"),
    "symlink outside, file through it": (lambda victim: [symlink("out", "../" * UP + "victim"), file("out/pwned")],
                                         r"link 'out' points outside it"),
    "symlink to a symlink that escapes": (
        lambda victim: [symlink("s1/s2/s3/up", "../../.."), symlink("esc", "s1/s2/s3/up/" + "../" * UP + "victim"),
                        file("esc/pwned")],
        r"link 'esc' points outside it"),
    "later symlink re-routes an earlier one": (lambda victim: _rerouted_later(UP),
                                               r"symlink 'a/s' would re-route a link extracted before it"),
    "hard link to /etc/passwd": (lambda victim: [hardlink("pw", "/etc/passwd")],
                                 r"hard link 'pw' points outside it or to no earlier file"),
    "hard link into the victim": (lambda victim: [hardlink("s", "../" * UP + "victim/secret")],
                                  r"hard link 's' points outside it or to no earlier file"),
    "hard link to a later member": (lambda victim: [hardlink("early", "late"), file("late")],
                                    r"hard link 'early' points outside it or to no earlier file .*'late'"),
    "character device": (lambda victim: [special("null", tarfile.CHRTYPE)], r"'null' is a device, fifo"),
    "fifo": (lambda victim: [special("pipe", tarfile.FIFOTYPE)], r"'pipe' is a device, fifo"),
}


def _api_bento(home, archive, limits=ExtractLimits()):
    import_bento(BentoStore(home), archive, limits)


def _api_model(home, archive, limits=ExtractLimits()):
    import_model(ModelStore(home), archive, limits)


ENTRIES = {"import_bento": _api_bento, "import_model": _api_model,
           "cli import": ("import",), "cli models import": ("models", "import")}


@pytest.fixture
def scene(home, tmp_path):
    """A store holding one model, and a victim directory beside HOME."""
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"w" * 100)
    ModelStore(home).import_path(weights, "kept")
    return make_victim(tmp_path / "victim")


def _outside(home):
    """The test directory (victim, store, archive) and /etc/passwd; HOME/tmp is checked apart."""
    staging_root = str(home / "tmp")
    return {k: v for k, v in snapshot(home.parent, PASSWD).items()
            if k != staging_root and not k.startswith(staging_root + "/")}


def assert_refused(home, entry, archive: Path, message: str, limits: ExtractLimits | None = None):
    before = _outside(home)
    if callable(entry):
        with pytest.raises(ArchiveError, match=message) as caught:
            entry(home, archive, *([limits] if limits else []))
        text = str(caught.value)
    else:
        result = Cli()(*entry, str(archive), ok=False)
        assert result.exit_code == 1, result.output
        text = result.output.strip()
        assert text.startswith("error: ") and re.search(message, text), text
    assert "\n" not in text
    assert _outside(home) == before
    assert list((home / "tmp").iterdir()) == []  # no staging directory left


@pytest.mark.parametrize("entry", ENTRIES.values(), ids=ENTRIES.keys())
@pytest.mark.parametrize("members, message", HOSTILE_IMPORTS.values(), ids=HOSTILE_IMPORTS.keys())
def test_hostile_imports_change_nothing(scene, home, tmp_path, entry, members, message):
    archive = tmp_path / "hostile.tar.gz"
    archive.write_bytes(make_tar([file("bento.yaml", b"name: x\nversion: '1'\n"), *members(scene)]))
    assert_refused(home, entry, archive, message)
    assert not (scene / "pwned").exists()


@pytest.mark.parametrize("entry", ENTRIES.values(), ids=ENTRIES.keys())
def test_import_of_a_header_that_lies_about_its_size(scene, home, tmp_path, entry):
    archive = tmp_path / "lying.tar.gz"
    archive.write_bytes(lying_size_tar("bento.yaml", 1 << 20, b"name: x\n"))
    assert_refused(home, entry, archive, r"the data of 'bento.yaml' is cut short or corrupt")


@pytest.mark.parametrize("entry", [_api_bento, _api_model], ids=["import_bento", "import_model"])
def test_import_limits(scene, home, tmp_path, entry):
    bomb = tmp_path / "bomb.tar.gz"
    bomb.write_bytes(make_tar([file("zeros", b"\0" * (8 << 20))]))
    assert bomb.stat().st_size < 64 << 10
    assert_refused(home, entry, bomb, r"'zeros' is larger than 1 MiB \(raise the limit with --max-archive-file-size\)",
                   ExtractLimits(max_file_bytes=1 << 20))
    assert_refused(home, entry, bomb, r"exceed 2 MiB at 'zeros' \(raise the limit with --max-archive-size\)",
                   ExtractLimits(max_total_bytes=2 << 20))
    many = tmp_path / "many.tar.gz"
    many.write_bytes(make_tar([file(f"f{i}") for i in range(50)]))
    assert_refused(home, entry, many, r"more than 20 members \(raise the limit with --max-archive-members\)",
                   ExtractLimits(max_members=20))


def _tree(root: Path) -> dict:
    """Relative path -> (mode, bytes or link target) for every entry, links not followed."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        content = os.readlink(path) if path.is_symlink() else path.read_bytes() if path.is_file() else None
        out[path.relative_to(root).as_posix()] = (st.st_mode, content)
    return out


def test_round_trip_keeps_files_modes_and_symlinks(home, tmp_path):
    with ModelStore(home).create("w") as draft:
        source = draft.path
        (source / "sub").mkdir()
        (source / "sub" / "w.bin").write_bytes(b"\0\1\2" * 1000)
        (source / "run.sh").write_bytes(b"#!/bin/sh\n")
        (source / "run.sh").chmod(0o755)
        (source / "latest").symlink_to("sub/w.bin")
        (source / "up").symlink_to("sub/../run.sh")
    model = draft.stored
    export_dir(model.path, tmp_path / "w.tar.gz")
    other = ModelStore(tmp_path / "other")
    imported = import_model(other, tmp_path / "w.tar.gz")
    assert imported.info == model.info
    assert _tree(imported.path) == _tree(model.path)
    assert stat.S_IMODE((imported.files / "run.sh").stat().st_mode) == 0o755
    assert os.readlink(imported.files / "latest") == "sub/w.bin"


def test_cli_bento_round_trip_keeps_modes(built, tmp_path, monkeypatch):
    store, bento = built
    Cli()("export", "echo:1", str(tmp_path / "echo.bento"))
    monkeypatch.setenv("OCIBUILD_HOME", str(tmp_path / "other"))
    Cli()("import", str(tmp_path / "echo.bento"))
    assert _tree(tmp_path / "other" / "bentos" / "echo" / "1") == _tree(bento.path)


# ---- export writes through an unpredictable temp file ---------------------------------------

def test_export_ignores_a_planted_partial_symlink(built, tmp_path):
    store, bento = built
    victim = make_victim(tmp_path / "victim")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".echo.bento.partial").symlink_to(victim / "secret")  # the old fixed temp name
    before = snapshot(victim)
    export_bento(bento, out / "echo.bento")
    assert snapshot(victim) == before
    assert sorted(p.name for p in out.iterdir()) == [".echo.bento.partial", "echo.bento"]  # no temp left
    assert stat.S_IMODE((out / "echo.bento").stat().st_mode) == 0o644
    assert import_bento(BentoStore(tmp_path / "other"), out / "echo.bento").info == bento.info


def test_export_to_a_missing_directory_is_one_line(built, tmp_path, ocibuild):
    store, bento = built
    with pytest.raises(OcibuildError, match=r"cannot write .*/missing/echo.bento: directory .*/missing does not exist"):
        export_bento(bento, tmp_path / "missing" / "echo.bento")
    result = ocibuild("export", "echo:1", str(tmp_path / "missing" / "echo.bento"), ok=False)
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot write") and result.output.count("\n") == 1
    assert not (tmp_path / "missing").exists()


def test_import_refuses_a_debian_lock_whose_hash_walks_out(built, tmp_path):
    """The lock's sha256 names the cached `.deb`: a path in its place never reaches the store."""
    store, bento = built
    copy = tmp_path / "copy"
    shutil.copytree(bento.path, copy, symlinks=True)
    lock = copy / "env/debian/packages.lock"
    lines = lock.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.count(" ") == 5)
    fields = lines[first].split()
    fields[3] = "../../../../../../../../" + str(tmp_path / "escaped").lstrip("/")
    lines[first] = " ".join(fields)
    lock.write_text("\n".join(lines) + "\n")
    archive = tmp_path / "hostile.bento"
    export_dir(copy, archive)
    other = BentoStore(tmp_path / "other-home")
    with pytest.raises(ArchiveError, match=rf"refusing the bento: env/debian/packages.lock: the Debian lock's line {first + 1} "):
        import_bento(other, archive)
    assert other.list() == []
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "escaped.deb").exists()
