from datetime import datetime, timedelta, UTC

import pytest

from ocibuild.sdk.names import Tag
from ocibuild.store.versioned import new_version
from ocibuild.errors import TagError


def test_parse_forms():
    assert Tag.parse("svc") == Tag("svc", None)
    assert Tag.parse("svc:latest") == Tag("svc", None)
    assert Tag.parse("svc:1.0") == Tag("svc", "1.0")


@pytest.mark.parametrize("text, rule", [
    ("Svc:1", "name must be"), ("svc:", "invalid version"), ("svc:.x", "invalid version"),
    ("svc:a/b", "invalid version"), ("../x:1", "name must be"), ("svc:" + "a" * 129, "invalid version"),
])
def test_invalid_tags_name_the_rule(text, rule):
    with pytest.raises(TagError, match=rule):
        Tag.parse(text)


def test_versions_sort_by_time_and_are_unique():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    versions = [new_version(t + timedelta(microseconds=i)) for i in range(50)]
    assert versions == sorted(versions)
    assert len({new_version(t) for _ in range(50)}) == 50
    Tag.parse(f"svc:{versions[0]}")
