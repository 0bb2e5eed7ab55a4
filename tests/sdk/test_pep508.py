"""The requirement shapes recognized without `packaging` are ones `packaging` accepts alike: on a
corpus of generated strings, every one the patterns take, packaging parses (a pin: to the same name
and one `==`); and the shapes services and locks use most are taken, so the fast path is used."""

import random
import subprocess
import sys

import pytest
from packaging.requirements import InvalidRequirement, Requirement

from ocibuild.sdk.pep508 import is_simple_requirement, pinned_name

# with letters and digits of other scripts, which `\d`, `\w` or re.IGNORECASE would let in
NAMES = ["numpy", "a", "Z9", "zope.interface", "python-dateutil", "typing_extensions", "x-", "-x", ".a", "a..b",
         "n\u00e9", "a b", "a/b", "", "\u212a", "\u017fix", "a\u0661"]
VERSIONS = ["1", "1.26", "1.26.4", "01.2", "2024.1", "1.0rc1", "1.0a2", "2.9.0.post0", "1.0.dev3", "1.0b1.post2.dev3",
            "1.", ".1", "1..2", "1.0+cpu", "1.*", "v1", "1.0-1", "1.0rc", "one", "1e3", "", "\u0661", "1.\uff11",
            "1.0RC1"]
OPERATORS = ["==", "!=", ">=", "<=", ">", "<", "~=", "===", "=", "=>", "<>", "==="]
GLUE = ["", " ", "\t", "  ", "\n", ",", " , ", ";", "[x]", " @ https://x/y.whl", " ; python_version >= '3.8'", "#", "\\"]


def corpus(count: int, seed: int = 508):
    rng = random.Random(seed)
    for _ in range(count):
        parts = [rng.choice(GLUE[:4]), rng.choice(NAMES)]
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            parts += [rng.choice(GLUE), rng.choice(OPERATORS), rng.choice(GLUE[:3]), rng.choice(VERSIONS)]
        parts.append(rng.choice(GLUE))
        yield "".join(parts)


def pins(count: int, seed: int = 751):
    """Strings shaped like a lock's lines, `name==version` and near misses."""
    rng = random.Random(seed)
    for _ in range(count):
        yield "".join([rng.choice(["", "", " "]), rng.choice(NAMES), rng.choice(["==", "==", "== ", *OPERATORS]),
                       rng.choice(VERSIONS), rng.choice(["", "", "", *GLUE])])


def parsed(text: str) -> Requirement | None:
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def test_every_simple_requirement_is_one_packaging_accepts():
    taken = 0
    for text in corpus(20000):
        if is_simple_requirement(text):
            taken += 1
            req = parsed(text)
            assert req is not None, text
            assert not (req.extras or req.url or req.marker), text
    assert taken > 500  # the corpus reaches the fast path


def test_every_pin_is_one_packaging_accepts_as_exactly_one_version():
    taken = 0
    for text in [*corpus(2000), *pins(20000)]:
        if (name := pinned_name(text)) is not None:
            taken += 1
            req = parsed(text)
            assert req is not None and req.name == name, text
            assert [s.operator for s in req.specifier] == ["=="] and not (req.extras or req.url or req.marker), text
    assert taken > 100


@pytest.mark.parametrize("text", ["numpy", "numpy>=1.26", "numpy >= 1.26, <2", "zope.interface~=5.4",
                                  "six==1.16.0", " pandas!=2.0.1 "])
def test_what_services_ask_for_most_needs_no_parser(text):
    assert is_simple_requirement(text) and parsed(text) is not None


@pytest.mark.parametrize("text", ["numpy==1.26.4", "python-dateutil==2.9.0.post0", "a==1.0rc1", "b==2.0.dev3"])
def test_what_uv_writes_in_a_lock_needs_no_parser(text):
    assert pinned_name(text) == text.split("==")[0]


@pytest.mark.parametrize("text", ["numpy~=1", "numpy>=1.*", "numpy==1.0+cpu", "numpy[extra]>=1", "numpy\n",
                                  "numpy ; python_version >= '3.8'", "numpy @ https://x/numpy.whl", "numpy>=1,"])
def test_anything_else_is_left_to_packaging(text):
    assert not is_simple_requirement(text) and pinned_name(text) is None


def test_a_long_run_of_spaces_is_refused_in_linear_time():
    """The patterns never put two `[ \t]*` side by side: when they did, 200,000 spaces took
    minutes to refuse (quadratic backtracking); now milliseconds, so 30 s is a bound, not a timing."""
    code = ("from ocibuild.sdk.pep508 import is_simple_requirement as simple, pinned_name as pin\n"
            "for text in ('numpy' + ' ' * 200_000 + 'x', 'numpy>=1' + ' ' * 200_000 + 'x', 'a==' + '1' * 200_000 + ' x'):\n"
            "    assert not simple(text) and pin(text) is None\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
