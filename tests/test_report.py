"""What `--metadata-file` says of each layer."""

from ocibuild.oci.image import Image
from ocibuild.report import layer_records
from tests.oci.test_model import layer


def test_each_layer_gets_its_own_history_entry_past_empty_ones(tmp_path):
    base = layer(tmp_path, b"base", "RUN apt-get install python3")
    history = ({"created_by": "RUN apt-get install python3"}, {"created_by": "CMD [\"python3\"]", "empty_layer": True})
    image = Image({"architecture": "amd64", "os": "linux", "config": {}}, (base,), history).append(
        layer(tmp_path, b"ours", "ocibuild: bento echo:1"))
    records = layer_records(image, {image.layers[-1].descriptor.digest}, {})
    assert [(r["createdBy"], r["source"]) for r in records] == [
        ("RUN apt-get install python3", "reused"), ("ocibuild: bento echo:1", "built")]
    bare = Image({"architecture": "amd64", "os": "linux", "config": {}}, (base,)).append(layer(tmp_path, b"x", "top"))
    assert [r["createdBy"] for r in layer_records(bare, set(), {})] == ["", "top"]  # a base without history
