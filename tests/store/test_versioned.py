"""Versioned entries: `NAME` alone is the newest version, found without reading every record."""

import os
import threading

import pytest

from ocibuild.contract import MODEL_FILES
from ocibuild.errors import AlreadyExistsError, NotFoundError
from ocibuild.models.store import MODEL_FILE, ModelInfo, ModelStore, content_digest
from ocibuild.sdk.names import Tag
from ocibuild.store.atomic import directory_lock
from ocibuild.store.versioned import LATEST


def add(store: ModelStore, version: str, created: str, name: str = "m"):
    """Commit a model entry with a chosen version and creation time, as an import would."""
    with store.staging() as staged:
        (staged / MODEL_FILES).mkdir()
        (staged / MODEL_FILES / "w.txt").write_text(version)
        digest, size, count = content_digest(staged / MODEL_FILES)
        ModelInfo(name, version, created, size, digest, count).dump(staged / MODEL_FILE)
        return store.commit(staged, Tag(name, version))


def created(i: int) -> str:
    return f"2026-01-01T00:00:{i:02d}+00:00"


def pointer(store: ModelStore, name: str = "m"):
    """The version the pointer names, while it holds (None: it does not)."""
    pointed = store._pointed(name)
    return pointed.info.version if pointed else None


def add_by_hand(store: ModelStore, version: str, created: str, name: str = "m"):
    """An entry renamed into the store without `commit`, as an older ocibuild would write it."""
    staged = store.root.parent / f"hand-{version}"
    (staged / MODEL_FILES).mkdir(parents=True)
    ModelInfo(name, version, created, 0, content_digest(staged / MODEL_FILES)[0], 0).dump(staged / MODEL_FILE)
    os.rename(staged, store.root / name / version)


@pytest.fixture
def store(tmp_path):
    return ModelStore(tmp_path / "home")


def counting_loads(store, monkeypatch) -> list:
    loads = []
    real = store.load
    monkeypatch.setattr(store, "load", lambda path: loads.append(path.name) or real(path))
    return loads


def test_newest_is_read_from_one_record_however_many_versions(store, monkeypatch):
    for i in range(30):
        add(store, f"v{i:02d}", created(i))
    loads = counting_loads(store, monkeypatch)
    assert store.get("m").info.version == "v29"
    assert loads == ["v29"]


def test_an_entry_committed_later_but_created_earlier_is_not_the_newest(store):
    add(store, "new", created(5))
    add(store, "imported-old", created(1))
    assert pointer(store) == "new" and store.get("m").info.version == "new"


def test_a_store_without_the_pointer_is_read_whole_once_then_gets_one(store, monkeypatch):
    add(store, "b", created(2))
    add(store, "a", created(1))
    (store.root / LATEST / "m").unlink()  # as a store written before pointers existed
    assert store.get("m").info.version == "b" and pointer(store) == "b"  # the reader left one
    loads = counting_loads(store, monkeypatch)
    assert store.get("m").info.version == "b" and loads == ["b"]
    monkeypatch.undo()
    (store.root / LATEST / "m").unlink()
    add(store, "c", created(0))  # older than both: the commit must still find "b" is newest
    assert pointer(store) == "b"


def test_a_reader_leaves_no_pointer_when_the_store_changed_while_it_read(store, monkeypatch):
    add(store, "a", created(1))
    (store.root / LATEST / "m").unlink()
    real = store._newest_of_records

    def read_while_another_adds(name):
        found = real(name)
        add_by_hand(store, "b", created(2))  # lands after the records were read
        return found
    monkeypatch.setattr(store, "_newest_of_records", read_while_another_adds)
    assert store.get("m").info.version == "a"  # what it read
    monkeypatch.undo()
    assert not (store.root / LATEST / "m").exists() and store.get("m").info.version == "b"


def test_an_entry_added_without_commit_is_seen(store):
    """An older ocibuild, a hand or a restored cache adds an entry without moving the pointer:
    the pointer no longer holds, and the newest is found by reading every record."""
    add(store, "a", created(1))
    add(store, "b", created(2))
    add_by_hand(store, "c", created(3))
    assert pointer(store) is None and store.get("m").info.version == "c"
    add(store, "d", created(0))
    assert pointer(store) == "c"


@pytest.mark.parametrize("content", ["../../x 0", "missing-version {mtime}", "latest {mtime}", "", "b", "b soon",
                                     "a {mtime}x", "\udcff {mtime}"])
def test_a_stale_or_hostile_pointer_falls_back_to_every_record(store, content):
    add(store, "a", created(1))
    add(store, "b", created(2))
    mtime = (store.root / "m").stat().st_mtime_ns
    (store.root / LATEST / "m").write_bytes(content.format(mtime=mtime).encode("utf-8", "surrogateescape"))
    assert store.get("m").info.version == "b"


def test_a_crash_between_rename_and_pointer_leaves_a_pointer_readers_ignore(store, monkeypatch):
    add(store, "a", created(1))

    def crash(*args):
        raise KeyboardInterrupt  # the process dies after the entry is renamed in, before the pointer
    monkeypatch.setattr(store, "_point", crash)
    with pytest.raises(KeyboardInterrupt):
        add(store, "b", created(2))
    monkeypatch.undo()
    assert (store.root / "m" / "b").is_dir() and pointer(store) is None
    assert store.get("m").info.version == "b"


def test_committing_an_existing_version_leaves_the_pointer(store):
    add(store, "b", created(2))
    add(store, "a", created(1))
    with pytest.raises(AlreadyExistsError):
        add(store, "a", created(9))
    assert pointer(store) == "b"


def test_deleting_the_newest_moves_the_pointer_and_the_last_removes_the_name(store):
    add(store, "a", created(1))
    add(store, "b", created(2))
    add(store, "c", created(3))
    store.delete("m:a")
    assert pointer(store) == "c"
    store.delete("m")  # the newest: the pointer moves to the next
    assert pointer(store) == "b" and store.get("m").info.version == "b"
    store.delete("m")
    assert not (store.root / "m").exists() and not (store.root / LATEST / "m").exists()
    with pytest.raises(NotFoundError):
        store.get("m")
    add(store, "d", created(4))
    assert store.get("m").info.version == "d"
    assert [e.info.version for e in store.list()] == ["d"]


def test_concurrent_commits_leave_the_newest_named(store):
    for name in ("m", "n", "o"):
        threads = [threading.Thread(target=add, args=(store, f"v{i:02d}", created(i), name)) for i in range(16)]
        for t in reversed(threads):  # the newest first, so that an unlocked commit would lose it
            t.start()
        for t in threads:
            t.join()
        assert pointer(store, name) == "v15"
    assert len(store.list()) == 48


def test_a_commit_waits_for_the_store_lock(store):
    """What makes the pointer right under concurrency: reading, comparing and writing it happen
    while no other writer of the store can."""
    add(store, "a", created(1))
    committer = threading.Thread(target=add, args=(store, "b", created(2)))
    with directory_lock(store.root):
        committer.start()
        committer.join(0.5)
        assert committer.is_alive() and pointer(store) == "a"
    committer.join()
    assert pointer(store) == "b"
