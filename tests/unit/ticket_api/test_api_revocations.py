"""``?since=`` of the revocation list: a version or an aware time, anything else bad_since."""

from __future__ import annotations

import pytest

from ticket_api.adapter.revocations import parse_since
from ticket_api.errors import BadRequest


def test_since_is_a_version_or_an_aware_time() -> None:
    """Digits are a list version, an ISO time with its offset an epoch second (a '+' sent unencoded arrives
    as a space and still parses); no since is the full list."""
    assert parse_since(None) == {}
    assert parse_since("812") == {"since_version": 812}
    t = {"since_time": 1796216400}
    assert parse_since("2026-12-02T21:00:00+08:00") == t
    assert parse_since("2026-12-02T21:00:00 08:00") == t


@pytest.mark.parametrize("bad", ["yesterday", "2026-12-02T21:00:00", "-5", "１２", "2026-13-01T00:00:00+08:00"])
def test_anything_else_is_bad_since(bad: str) -> None:
    """A word, a time without its offset, a negative or non-ASCII number, an impossible date: 400 bad_since."""
    with pytest.raises(BadRequest) as exc:
        parse_since(bad)
    assert exc.value.reason == "bad_since"
