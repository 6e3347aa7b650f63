"""ledger.core.encoding: RFC 8785 canonical JSON and strict parsing."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core.encoding import b64, canonical, parse, parse_canonical, require_mapping, unb64, unhex
from ledger.errors import EncodingError, LedgerError

SAFE = 2**53 - 1

# JSON values that have an RFC 8785 form: safe integers, finite floats, text without surrogates.
json_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-SAFE, SAFE)
    | st.floats(allow_nan=False, allow_infinity=False)
    | json_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_text, inner, max_size=4),
    max_leaves=20,
)


def test_canonical_sorts_members_and_drops_whitespace() -> None:
    """Members are sorted, nested too, and no white space is emitted."""
    assert canonical({"b": 1, "a": {"d": [1, 2], "c": None}}) == b'{"a":{"c":null,"d":[1,2]},"b":1}'


def test_canonical_known_rfc8785_forms() -> None:
    """Numbers use ECMAScript formatting; strings are raw UTF-8 with minimal escapes."""
    assert canonical(1.0) == b"1"
    assert canonical(-0.0) == b"0"
    assert canonical(1e21) == b"1e+21"
    assert canonical(5e-7) == b"5e-7"
    assert canonical(SAFE) == b"9007199254740991"
    assert canonical("渝A\n\"\\") == '"渝A\\n\\"\\\\"'.encode()
    assert canonical(["\u2028"]) == '["\u2028"]'.encode()


def test_canonical_sorts_by_utf16_code_units() -> None:
    """U+E000 sorts after U+1F600 because the latter's UTF-16 surrogates (D83D…) come first."""
    assert canonical({"\ue000": 1, "\U0001f600": 2}) == '{"\U0001f600":2,"\ue000":1}'.encode()


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), -float("inf"), 2**53, -(2**53), {1: 2}, "\ud800", b"bytes", {1, 2}, object()],
)
def test_canonical_rejects_values_without_encoding(value: object) -> None:
    """NaN, infinities, unsafe integers, non-string keys, lone surrogates and non-JSON types raise EncodingError."""
    with pytest.raises(EncodingError) as info:
        canonical(value)
    assert isinstance(info.value, LedgerError)
    assert info.value.reason == "malformed"


def test_canonical_rejects_deep_nesting_with_typed_error() -> None:
    """Nesting deeper than the interpreter can recurse is an EncodingError, not a RecursionError."""
    deep: dict[str, object] = {}
    cur = deep
    for _ in range(5000):
        nxt: dict[str, object] = {}
        cur["a"] = nxt
        cur = nxt
    with pytest.raises(EncodingError):
        canonical(deep)


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_round_trip_and_idempotence(value: object) -> None:
    """parse(canonical(v)) gives v back (up to float/int equality) and re-encodes to the same bytes."""
    data = canonical(value)
    back = parse(data)
    assert canonical(back) == data
    assert parse_canonical(data) == back
    if not (isinstance(value, float) and math.isnan(value)):
        assert back == value


@given(st.dictionaries(json_text, json_scalars, max_size=6), st.randoms())
@settings(max_examples=200, deadline=None)
def test_member_order_does_not_matter(d: dict[str, object], rnd: object) -> None:
    """The same object built in any member order has the same canonical bytes."""
    items = list(d.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    assert canonical(dict(items)) == canonical(d)


@given(json_values)
@settings(max_examples=100, deadline=None)
def test_pretty_printed_json_is_not_canonical(value: object) -> None:
    """parse_canonical refuses any other serialisation of the same value (here: indented)."""
    pretty = json.dumps(value, indent=1, ensure_ascii=True).encode()
    if pretty != canonical(value):
        with pytest.raises(EncodingError):
            parse_canonical(pretty)


@pytest.mark.parametrize(
    "text",
    ['{"a":1,"a":2}', '{"x":{"b":1,"b":1}}', "[NaN]", "[Infinity]", "[-Infinity]", '{"a":1', b"\xff\xfe", ""],
)
def test_parse_rejects_duplicates_constants_and_garbage(text: str | bytes) -> None:
    """Duplicate members, NaN/Infinity, truncated JSON and invalid UTF-8 raise EncodingError."""
    with pytest.raises(EncodingError):
        parse(text)


def test_parse_rejects_absurd_nesting() -> None:
    """A stack-exhausting document is an EncodingError, not a crash."""
    with pytest.raises(EncodingError):
        parse("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize("data", [b'{"b":1,"a":2}', b'{"a": 1}', b"1.0", b'"\\u00e9"', b"[1,2] "])
def test_parse_canonical_rejects_non_canonical(data: bytes) -> None:
    """Unsorted members, spaces, 1.0 and escaped non-ASCII are valid JSON but not canonical."""
    parse(data)
    with pytest.raises(EncodingError, match="canonical"):
        parse_canonical(data)


@given(st.binary(max_size=100))
def test_b64_round_trip(data: bytes) -> None:
    """unb64(b64(x)) == x for any bytes."""
    assert unb64(b64(data)) == data


@pytest.mark.parametrize("text", ["@@@@", "YQ", "YQ==\n", "Y Q==", "ü"])
def test_unb64_is_strict(text: str) -> None:
    """Non-alphabet characters, missing padding and white space raise EncodingError."""
    with pytest.raises(EncodingError):
        unb64(text)


def test_unb64_rejects_non_strings() -> None:
    """A non-string (e.g. a JSON number in a signature field) is an EncodingError."""
    with pytest.raises(EncodingError):
        unb64(12)  # type: ignore[arg-type]


def test_unhex() -> None:
    """unhex checks the alphabet and an optional fixed length."""
    assert unhex("00ff", length=2) == b"\x00\xff"
    with pytest.raises(EncodingError):
        unhex("zz")
    with pytest.raises(EncodingError, match="must be 3 bytes"):
        unhex("00ff", length=3)


def test_require_mapping() -> None:
    """Only JSON objects pass require_mapping."""
    assert require_mapping({"a": 1}, what="x") == {"a": 1}
    with pytest.raises(EncodingError, match="x must be a JSON object"):
        require_mapping([1], what="x")


def test_integers_beyond_the_safe_range_read_back_as_floats() -> None:
    """A float ≥ 2**53 is written as digits; reading it back must re-encode to the same bytes
    (regression: it came back as an int outside the safe range and could not be re-encoded)."""
    data = canonical({"x": 1e16})
    assert data == b'{"x":10000000000000000}'
    assert canonical(parse(data)) == data
    assert parse_canonical(data) == {"x": 1e16}


def test_unrepresentable_integers_are_not_canonical() -> None:
    """2**53 + 1 has no exact double, and a 5000-digit number is not a number at all here."""
    with pytest.raises(EncodingError):
        parse_canonical(b"9007199254740993")
    with pytest.raises(EncodingError):
        parse_canonical(b"1" * 5000)
