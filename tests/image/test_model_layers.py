"""Each model is a layer of its own: shared across images, cached by digest, untouched by edits."""

import shutil
import tarfile

from ocibuild.bento.build import build_bento
from ocibuild.bento.store import BentoStore
from ocibuild.models.store import ModelStore
from tests.builds import containerize

SERVICE = '''
import ocibuild

@ocibuild.service(name="{name}")
class Svc:
    table = ocibuild.models.Model("table")

    @ocibuild.api
    def ping(self) -> str:
        return "{name}"
'''


def service(tmp_path, name):
    root = tmp_path / name
    root.mkdir()
    (root / "service.py").write_text(SERVICE.format(name=name))
    return root


def store_table(home, data: bytes):
    with ModelStore(home).create("table") as draft:
        (draft.path / "table.bin").write_bytes(data)
    return draft.stored


def model_layer(image, model):
    wanted = f"ocibuild: model table:{model.info.version}"
    return next(l for l, h in zip(image.layers, image.history[-len(image.layers):]) if h.get("created_by") == wanted)


def test_one_model_one_shared_layer(example, tmp_path):
    home = tmp_path / "home"
    model = store_table(home, b"weights" * 1000)
    store = BentoStore(home)
    one = containerize(example, bento=build_bento(service(tmp_path, "one"), store))
    two = containerize(example, bento=build_bento(service(tmp_path, "two"), store))
    assert model_layer(one, model).descriptor == model_layer(two, model).descriptor
    assert one.layers[-1].descriptor != two.layers[-1].descriptor
    with tarfile.open(model_layer(one, model).path()) as tar:
        names = tar.getnames()
        assert all(m.mtime == 0 for m in tar.getmembers())
    assert f"opt/ocibuild/models/table/{model.info.version}/files/table.bin" in names
    with tarfile.open(one.layers[-1].path()) as top:
        assert not any(n.startswith("app/models") for n in top.getnames())


def test_new_model_version_changes_only_its_layer(example, tmp_path):
    home = tmp_path / "home"
    store = BentoStore(home)
    src = service(tmp_path, "svc")
    old = store_table(home, b"v1")
    before = containerize(example, bento=build_bento(src, store))
    new = store_table(home, b"v2")
    after = containerize(example, bento=build_bento(src, store))
    changed = [i for i, (a, b) in enumerate(zip(before.layers, after.layers)) if a.descriptor != b.descriptor]
    model_index = before.layers.index(model_layer(before, old))
    # the model layer, and the bento layer whose bento.yaml records the new version; nothing else
    assert changed == [model_index, len(before.layers) - 1]
    assert model_layer(after, new).descriptor != model_layer(before, old).descriptor


def test_warm_model_layer_reads_no_model_bytes(example, tmp_path):
    home = tmp_path / "home"
    store_table(home, b"w" * 100_000)
    bento = build_bento(service(tmp_path, "svc"), BentoStore(home))
    first = containerize(example, bento=bento)
    # take the bytes away: a cache hit must not need them
    for files in (bento.path / "models").glob("*/*/files"):
        shutil.rmtree(files)
    assert containerize(example, bento=bento).digest == first.digest
