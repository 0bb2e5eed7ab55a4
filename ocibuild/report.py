"""What a command tells scripts and people.

stdout carries only what a script needs (a bento's tag, an image's reference: the pushed
`REGISTRY/REPO@sha256:...` last, as ko does); everything for people goes to stderr: a line per
step with its time, and a summary of what was built, reused and uploaded. `--metadata-file`
writes the same facts as JSON for CI (fields documented in the README).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ocibuild.oci.digest import Digest
from ocibuild.oci.image import Image
from ocibuild.oci.index import Manifest, walk


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


@dataclass
class Steps:
    """Announces steps on stderr: on a terminal as they start; in a log, as they end, with the
    seconds each took (one line per step)."""

    echo: Callable[[str], None]
    terminal: bool = field(default_factory=lambda: sys.stderr.isatty())
    started: float = field(default_factory=time.perf_counter)
    _current: tuple[str, float] | None = None

    def __call__(self, name: str) -> None:
        self.end()
        self._current = (name, time.perf_counter())
        if self.terminal:
            self.echo(f"==> {name}")

    def end(self) -> None:
        if self._current is not None and not self.terminal:
            name, since = self._current
            self.echo(f"{name}: {time.perf_counter() - since:.2f} s")
        self._current = None

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


def layer_records(root: Manifest, built: set[Digest], pushed: dict[str, str]) -> list[dict]:
    """Every layer of every image under `root`, once: built now (`built`: the blobs this command
    wrote, known without listing the store, so an edit's cost does not grow with it), reused from
    the blob store, or still in a registry (a base never downloaded); and what the push did with it."""
    records, seen = [], set()
    for image in walk(root):
        if not isinstance(image, Image):
            continue
        for layer, history in zip(image.layers, layer_history(image)):
            digest = layer.descriptor.digest
            if digest in seen:
                continue
            seen.add(digest)
            source = "registry" if layer.origin else "built" if digest in built else "reused"
            records.append({"digest": str(digest), "diffId": str(layer.diff_id), "size": layer.descriptor.size,
                            "mediaType": layer.descriptor.media_type, "createdBy": history.get("created_by", ""),
                            "source": source, "push": pushed.get(digest)})
    return records


def layer_history(image: Image) -> list[dict]:
    """Each layer's history entry: the entries not marked `empty_layer` (a `CMD`, an `ENV`), in
    order; a base whose history names fewer than its layers leaves its first layers an empty one."""
    entries = [h for h in image.history if not h.get("empty_layer")][-len(image.layers):] if image.layers else []
    return [{}] * (len(image.layers) - len(entries)) + entries


def metadata(root: Manifest, bento: str, references: list[str], outputs: list[str], layers: list[dict],
             seconds: float) -> dict:
    return {"bento": bento, "digest": str(root.digest), "mediaType": root.media_type,
            "size": sum(len(m.manifest_bytes()) for m in walk(root)) + sum(layer["size"] for layer in layers),
            "platforms": [str(m.platform) for m in walk(root) if isinstance(m, Image)],
            "references": references, "outputs": outputs, "layers": layers, "seconds": round(seconds, 3)}


def summary(layers: list[dict], seconds: float) -> str:
    def total(key: str, value: str) -> tuple[int, int]:
        chosen = [layer["size"] for layer in layers if layer[key] == value]
        return len(chosen), sum(chosen)

    parts = [f"{n} layers {what} ({human_size(size)})" for what, (n, size) in
             (("built", total("source", "built")), ("reused", total("source", "reused")),
              ("uploaded", total("push", "uploaded")), ("mounted", total("push", "mounted"))) if n]
    return f"Done in {seconds:.2f} s: " + (", ".join(parts) or "nothing to do")
