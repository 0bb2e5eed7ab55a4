import io
import tarfile

import pytest

from ocibuild.bento.archive import export_bento, import_bento
from ocibuild.bento.build import build_bento
from ocibuild.bento.store import BentoStore
from ocibuild.errors import AlreadyExistsError, ArchiveError, TagError
from tests.conftest import ECHO, copy_service


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


def test_corrupt_archive(home, tmp_path):
    path = tmp_path / "corrupt.tar.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ArchiveError, match="cannot read"):
        import_bento(BentoStore(home), path)
