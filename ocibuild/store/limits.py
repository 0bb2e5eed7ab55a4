"""The ceilings an archive import enforces, apart from the extractor: the CLI shows their defaults
in `--help`, which must not load `tarfile` to do so."""

from __future__ import annotations

from dataclasses import dataclass

GiB = 1 << 30


@dataclass(frozen=True)
class ExtractLimits:
    """Ceilings that stop an archive bomb but let multi-GB model files through.

    64 GiB per file holds the largest single weight files in common use (safetensors shards
    are a few GB, big GGUF files tens of GB); 256 GiB in all and 100 000 members are far above
    any bento or model we build, and low enough to fail long before most disks fill.
    """

    max_members: int = 100_000
    max_file_bytes: int = 64 * GiB
    max_total_bytes: int = 256 * GiB
