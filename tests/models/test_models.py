"""The model store, models in services and bentos, and model archives."""

import io
import os
import tarfile

import pytest

import ocibuild
from ocibuild.bento.archive import export_bento, export_dir, import_bento, import_model
from ocibuild.bento.build import build_bento
from ocibuild.bento.info import ModelPin
from ocibuild.bento.store import BentoStore
from ocibuild.errors import ArchiveError, NotFoundError, SpecError
from ocibuild.contract import MODELS_DIR_ENV
from ocibuild.sdk.model import Model
from ocibuild.models.store import ModelStore, content_digest
from ocibuild.sdk.service import service_spec
from tests.conftest import run_process

SERVICE = '''
import ocibuild

@ocibuild.service(name="{name}", models=[ocibuild.models.Model("extra")])
class Svc:
    table = ocibuild.models.Model("table:latest")

    @ocibuild.api
    def size(self) -> int:
        return len((self.table.path / "t.txt").read_text())
'''


def service_dir(tmp_path, name="svc"):
    root = tmp_path / name
    root.mkdir()
    (root / "service.py").write_text(SERVICE.format(name=name))
    return root


def store_model(store, name, files):
    with store.create(name, labels={"team": "ml"}) as draft:
        for rel, data in files.items():
            (draft.path / rel).parent.mkdir(parents=True, exist_ok=True)
            (draft.path / rel).write_bytes(data)
    return draft.stored


def test_create_stores_atomically_with_digest_and_labels(home):
    with ocibuild.models.create("tiny", labels={"kind": "test"}, metadata={"acc": 0.9}) as model:
        (model.path / "w.bin").write_bytes(b"\0" * 100)
        (model.path / "sub").mkdir()
        (model.path / "sub" / "v.txt").write_text("v")
    stored = ocibuild.models.get("tiny:latest")
    assert stored.info == model.stored.info
    assert stored.info.size == 101 and stored.info.files == 2
    assert stored.info.labels == {"kind": "test"} and stored.info.metadata == {"acc": 0.9}
    assert stored.info.digest == content_digest(stored.files)[0]
    assert (home / "models" / "tiny" / stored.info.version / "model.yaml").is_file()


def test_failed_create_stores_nothing(home):
    with pytest.raises(RuntimeError):
        with ocibuild.models.create("tiny") as model:
            (model.path / "half.bin").write_bytes(b"x")
            raise RuntimeError("training diverged")
    assert ocibuild.models.list_models() == []
    assert not any((home / "tmp").iterdir())


def test_digest_covers_paths_modes_and_bytes(tmp_path):
    def digest(files, executable=()):
        root = tmp_path / str(len(list(tmp_path.iterdir())))
        root.mkdir()
        for rel, data in files.items():
            (root / rel).write_bytes(data)
            if rel in executable:
                (root / rel).chmod(0o755)
        return content_digest(root)[0]

    base = digest({"a": b"1", "b": b"2"})
    assert base == digest({"b": b"2", "a": b"1"})
    assert base != digest({"a": b"1", "c": b"2"})
    assert base != digest({"a": b"1", "b": b"3"})
    assert base != digest({"a": b"1", "b": b"2"}, executable={"a"})


def test_import_path_file_dir_and_dedupe(home, tmp_path):
    store = ModelStore(home)
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"w" * 10)
    first, created = store.import_path(weights, "w")
    assert created and (first.files / "weights.bin").read_bytes() == b"w" * 10
    again, created = store.import_path(weights, "w")
    assert not created and again.tag == first.tag
    weights.write_bytes(b"v" * 10)
    newer, created = store.import_path(weights, "w")
    assert created and newer.tag != first.tag and store.get("w").tag == newer.tag
    directory = tmp_path / "d"
    (directory / "x").mkdir(parents=True)
    (directory / "x" / "y.txt").write_text("y")
    from_dir, _ = store.import_path(directory, "d")
    assert (from_dir.files / "x" / "y.txt").read_text() == "y"


def test_model_references():
    assert Model("m").tag == "m:latest" and Model("m:1").version == "1"
    with pytest.raises(SpecError, match="invalid model tag"):
        Model("Bad Name")


def test_path_resolves_from_models_dir(tmp_path, monkeypatch):
    (tmp_path / "m" / "2" / "files").mkdir(parents=True)
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    assert Model("m").path == tmp_path / "m" / "2" / "files"
    assert Model("m:2").path == tmp_path / "m" / "2" / "files"
    with pytest.raises(NotFoundError, match="model m:3 is not in"):
        Model("m:3").path


def test_service_declares_models(tmp_path):
    @ocibuild.service(models=[Model("a:1")])
    class S:
        b = Model("b")

    assert service_spec(S).models == (Model("a:1"), Model("b"))
    with pytest.raises(SpecError, match="two different versions"):
        @ocibuild.service(models=[Model("a:1")])
        class T:
            a = Model("a:2")


def test_build_pins_models_and_hard_links_them(home, tmp_path):
    models = ModelStore(home)
    table = store_model(models, "table", {"t.txt": b"hello"})
    extra = store_model(models, "extra", {"e.bin": b"e"})
    bento = build_bento(service_dir(tmp_path), BentoStore(home))
    assert bento.info.models == [ModelPin("extra", extra.info.version, extra.info.digest, 1),
                                 ModelPin("table", table.info.version, table.info.digest, 5)]
    copy = bento.path / "models" / "table" / table.info.version / "files" / "t.txt"
    assert os.stat(copy).st_ino == os.stat(table.files / "t.txt").st_ino


def test_missing_model_fails_the_build_naming_it(home, tmp_path):
    store_model(ModelStore(home), "extra", {"e": b"e"})
    with pytest.raises(NotFoundError, match="model table:latest used by service svc is not in the model store"):
        build_bento(service_dir(tmp_path), BentoStore(home))
    assert BentoStore(home).list() == []


def test_bento_export_carries_models_and_import_restores_them(home, tmp_path):
    models = ModelStore(home)
    table = store_model(models, "table", {"t.txt": b"hello"})
    store_model(models, "extra", {"e": b"e"})
    bento = build_bento(service_dir(tmp_path), BentoStore(home))
    export_bento(bento, tmp_path / "b.bento")
    other = tmp_path / "other"
    imported = import_bento(BentoStore(other), tmp_path / "b.bento")
    restored = ModelStore(other).get(f"table:{table.info.version}")
    assert (restored.files / "t.txt").read_bytes() == b"hello"
    assert restored.info == table.info
    assert imported.info.models == bento.info.models


def test_model_archive_round_trip_and_tampering(home, tmp_path):
    models = ModelStore(home)
    model = store_model(models, "table", {"t.txt": b"hello"})
    export_dir(model.path, tmp_path / "m.tar.gz")
    other = ModelStore(tmp_path / "other")
    assert import_model(other, tmp_path / "m.tar.gz").info == model.info
    # the same archive with a changed file: refused, nothing stored
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(tmp_path / "m.tar.gz") as src, tarfile.open(tampered, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name == "files/t.txt":
                data = b"HELLO"
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    third = ModelStore(tmp_path / "third")
    with pytest.raises(ArchiveError, match="is corrupt"):
        import_model(third, tampered)
    assert third.list() == []


def test_hostile_model_archive_is_refused(home, tmp_path):
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("files/../../../evil")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ArchiveError, match="contains '..'"):
        import_model(ModelStore(home), path)


def test_models_cli(home, tmp_path):
    source = tmp_path / "weights.bin"
    source.write_bytes(b"123")
    result = run_process("models", "import", str(source), "--name", "w", "--label", "team=ml")
    assert result.returncode == 0 and result.stdout.startswith("Imported model w:")
    assert run_process("models", "import", str(source), "--name", "w").stdout.startswith("Unchanged: model w:")
    assert run_process("models", "import", str(source), "--name", "w", "--label", "team=ml").stdout.startswith(
        "Unchanged: model w:")
    listed = run_process("models", "list").stdout.splitlines()
    assert listed[0].split()[:4] == ["TAG", "SIZE", "CREATED", "DIGEST"] and listed[1].startswith("w:")
    assert "team: ml" in run_process("models", "get", "w").stdout
    relabelled = run_process("models", "import", str(source), "--name", "w", "--label", "stage=prod")
    assert relabelled.stdout.startswith("Imported model w:")  # new labels are not dropped: a new version holds them
    assert "stage: prod" in run_process("models", "get", "w").stdout
    assert run_process("models", "export", "w", str(tmp_path / "w.tar.gz")).returncode == 0
    assert run_process("models", "delete", "w", "-y").returncode == 0
    assert run_process("models", "import", str(tmp_path / "w.tar.gz")).stdout.startswith("Imported model w:")
    missing = run_process("models", "get", "nope")
    assert missing.returncode == 1 and missing.stderr.strip() == \
        "error: no model named 'nope' (see `ocibuild models list`)"
    bad = run_process("models", "import", str(source), "--name", "Bad Name")
    assert bad.returncode == 1 and "invalid model name 'Bad Name'" in bad.stderr


def _rewrite(src, dst, change):
    """Copy a tar archive, passing each regular member's (name, bytes) through `change`."""
    with tarfile.open(src) as old, tarfile.open(dst, "w:gz") as new:
        for member in old.getmembers():
            data = old.extractfile(member).read() if member.isfile() else None
            if data is not None:
                data = change(member.name, data)
                member.size = len(data)
            new.addfile(member, io.BytesIO(data) if data is not None else None)
    return dst


def _bento_with_models(home, tmp_path):
    models = ModelStore(home)
    table = store_model(models, "table", {"t.txt": b"hello"})
    store_model(models, "extra", {"e": b"e"})
    export_bento(build_bento(service_dir(tmp_path), BentoStore(home)), tmp_path / "b.bento")
    return table


def _nothing_imported(other):
    assert BentoStore(other).list() == [] and ModelStore(other).list() == []
    assert list((other / "tmp").iterdir()) == []


def test_bento_with_a_corrupt_model_is_not_imported(home, tmp_path):
    """The carried models are verified before the bento is committed, not after."""
    _bento_with_models(home, tmp_path)
    tampered = _rewrite(tmp_path / "b.bento", tmp_path / "t.bento",
                        lambda name, data: b"HELLO" if name.endswith("/files/t.txt") else data)
    other = tmp_path / "other"
    with pytest.raises(ArchiveError, match=r"model table:\S+ is corrupt"):
        import_bento(BentoStore(other), tampered)
    _nothing_imported(other)


def test_bento_whose_model_names_a_path_is_not_imported(home, tmp_path):
    """A carried model.yaml's version becomes a store path: it must be a valid version first."""
    table = _bento_with_models(home, tmp_path)
    tampered = _rewrite(tmp_path / "b.bento", tmp_path / "t.bento",
                        lambda name, data: data.replace(table.info.version.encode(), b"../../../escaped")
                        if name.endswith("table/" + table.info.version + "/model.yaml") else data)
    other = tmp_path / "other"
    with pytest.raises(ArchiveError, match="invalid version '../../../escaped'"):
        import_bento(BentoStore(other), tampered)
    _nothing_imported(other)
    assert not (tmp_path / "escaped").exists()


def test_a_carried_model_must_be_the_one_its_directory_names(tmp_path):
    """A bento's models/N/V is what a service resolves `N:V` to: it must hold model N:V."""
    import shutil

    from ocibuild.bento.archive import verify_bento

    stored = store_model(ModelStore(tmp_path / "home"), "other", {"w.bin": b"w"})
    staged = tmp_path / "staged"
    shutil.copytree(stored.path, staged / "models" / "m" / "1")
    with pytest.raises(ArchiveError, match=f"models/m/1 holds model other:{stored.info.version}"):
        verify_bento(staged, None)


@pytest.mark.parametrize("plant", ["files-is-a-link", "link-out-of-files"])
def test_a_carried_model_may_not_link_outside_itself(tmp_path, plant):
    """Inside a bento, `files -> ../../../bentos` names the bento's own parts; once the model is
    in the store it would name every bento there. Refused before the digest is even computed."""
    from ocibuild.models.store import verify_model

    stored = store_model(ModelStore(tmp_path / "home"), "m", {"w.bin": b"w"})
    model = tmp_path / "bento" / "models" / "m" / stored.info.version
    model.mkdir(parents=True)
    (model / "model.yaml").write_bytes((stored.path / "model.yaml").read_bytes())
    if plant == "files-is-a-link":
        (tmp_path / "bento" / "bentos").mkdir()
        (model / "files").symlink_to("../../../bentos")
        match = "the model's files is a symlink"
    else:
        (model / "files").mkdir()
        (model / "files" / "x").symlink_to("../../../../config")
        match = "the symlink points outside"
    with pytest.raises(ArchiveError, match=match):
        verify_model(model)


def test_labels_read_from_a_model_yaml_match_the_same_labels_given_as_text(home, tmp_path):
    """A model.yaml written elsewhere may hold `n: 1`: `--label n=1` is the same label."""
    import yaml

    from ocibuild.models.store import MODEL_FILE

    source = tmp_path / "weights.bin"
    source.write_bytes(b"123")
    store = ModelStore(home)
    stored, _ = store.import_path(source, "w", {"n": "1"})
    record = stored.path / MODEL_FILE
    record.write_text(record.read_text().replace("n: '1'", "n: 1"))
    assert yaml.safe_load(record.read_text())["labels"] == {"n": 1}
    again, created = store.import_path(source, "w", {"n": "1"})
    assert (again.info.version, created) == (stored.info.version, False)
