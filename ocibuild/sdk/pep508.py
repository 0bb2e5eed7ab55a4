"""The everyday shapes of a PEP 508 requirement, recognized without `packaging`'s full parser.

Importing `packaging.requirements` (its tokenizer, markers and platform tags) costs a tenth of an
edit's build, while `numpy`, `numpy>=1.26,<2` and a lock's `numpy==1.26.4` need none of it. Each
pattern accepts only strings that `packaging` accepts with the same name and the same specifiers
(`tests/sdk/test_pep508.py` checks this on a corpus); anything else goes to `packaging`, which
gives the verdict and the message.
"""

from __future__ import annotations

import re

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"  # PEP 508's project name
_RELEASE = r"[0-9]+(?:\.[0-9]+)*"
_SPACE = r"[ \t]*"  # packaging's whitespace: a newline ends a requirement
_COMPARISON = rf"(?:==|!=|<=|>=|<|>){_SPACE}{_RELEASE}|~={_SPACE}[0-9]+(?:\.[0-9]+)+"  # `~=` needs two parts
# A PEP 440 version in its normal form: release, then optional pre-, post- and dev-release.
_PIN = rf"{_RELEASE}(?:(?:a|b|rc)[0-9]+)?(?:\.post[0-9]+)?(?:\.dev[0-9]+)?"

# Spaces after the name belong to the comparisons: two `[ \t]*` side by side would take quadratic
# time to refuse a long run of spaces.
_SIMPLE = re.compile(rf"{_SPACE}{_NAME}(?:{_SPACE}(?:{_COMPARISON})(?:{_SPACE},{_SPACE}(?:{_COMPARISON}))*)?{_SPACE}")
_PINNED = re.compile(rf"({_NAME})=={_PIN}")


def is_simple_requirement(text: str) -> bool:
    """A project name, with or without release comparisons: valid without asking `packaging`."""
    return _SIMPLE.fullmatch(text) is not None


def pinned_name(text: str) -> str | None:
    """`name==version` with a normal-form version (what uv writes in a lock): its name, else None."""
    match = _PINNED.fullmatch(text)
    return match.group(1) if match else None
