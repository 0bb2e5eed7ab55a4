"""Layer planning as pure data: which files go into which layer, and in what order.

Dependencies are split so that changing one dependency rebuilds one layer: a distribution
larger than `BIG_DISTRIBUTION` installed gets a layer of its own, the rest share one.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

BIG_DISTRIBUTION = 20 * 1024 * 1024


@dataclass(frozen=True)
class Distribution:
    """An installed distribution: its dist-info name, files (relative to the target) and size."""

    name: str
    files: tuple[str, ...]
    size: int
    record: bytes  # the RECORD file: file hashes, so a fingerprint of the installed content


@dataclass(frozen=True)
class DependencyGroup:
    """Distributions that go into one dependency layer together."""

    distributions: tuple[Distribution, ...]

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(sorted(f for d in self.distributions for f in d.files))

    @property
    def size(self) -> int:
        return sum(d.size for d in self.distributions)

    @property
    def description(self) -> str:
        return "python packages " + " ".join(d.name.removesuffix(".dist-info") for d in self.distributions)


def record_files(record: bytes) -> tuple[str, ...]:
    """Paths a RECORD lists, skipping any that would leave the install directory."""
    rows = csv.reader(io.StringIO(record.decode()))
    return tuple(sorted({row[0] for row in rows if row and ".." not in row[0].split("/")
                         and not row[0].startswith("/")}))


def is_native(dist: Distribution) -> bool:
    """Holds compiled code (extension modules, vendored shared libraries): differs by platform."""
    return any(f.endswith((".so", ".pyd", ".dylib")) or ".so." in f.rsplit("/", 1)[-1] for f in dist.files)


def group_distributions(dists: list[Distribution], unclaimed: tuple[str, ...] = (),
                        threshold: int = BIG_DISTRIBUTION, split_native: bool = False) -> list[DependencyGroup]:
    """Big distributions alone, by name; then one layer with the rest (and unclaimed files).

    `split_native` (multi-platform images): the small ones in two layers, pure Python first (the
    same bytes, so the same digest, on every platform), then those with compiled code."""
    ordered = sorted(dists, key=lambda d: d.name)
    big = [DependencyGroup((d,)) for d in ordered if d.size > threshold]
    small = tuple(d for d in ordered if d.size <= threshold)
    if unclaimed:
        small += (Distribution("(unclaimed files)", unclaimed, 0, "\n".join(unclaimed).encode()),)
    if split_native:
        groups = (tuple(d for d in small if not is_native(d)), tuple(d for d in small if is_native(d)))
        return big + [DependencyGroup(g) for g in groups if g]
    return big + ([DependencyGroup(small)] if small else [])
