"""ledger.core.checkpoint: C2SP tlog-checkpoint bodies in C2SP signed notes, several signers."""

from __future__ import annotations

import base64
import hashlib

import pytest

from ledger.core import checkpoint as cp
from ledger.core.crypto import ED25519, PrivateKey
from ledger.errors import CheckpointError

ROOT = hashlib.sha256(b"root").digest()
A = PrivateKey(alg=ED25519, seed=b"a" * 32)
B = PrivateKey(alg=ED25519, seed=b"b" * 32)
C = PrivateKey(alg=ED25519, seed=b"c" * 32)
VERIFIERS = {"chengguan": A.public_key, "zhujian": B.public_key, "jiaotong": C.public_key}
ORIGIN = "muck-ledger.example/cq-muck"


def test_body_format_is_exactly_c2sp() -> None:
    """origin, decimal size and base64 root, each newline-terminated, then extension lines."""
    c = cp.Checkpoint(ORIGIN, 1234, ROOT)
    assert c.body() == f"{ORIGIN}\n1234\n{base64.b64encode(ROOT).decode()}\n"
    assert cp.Checkpoint(ORIGIN, 0, ROOT, ("ext one",)).body().endswith("\next one\n")
    assert cp.Checkpoint.parse_body(c.body()) == c


def test_key_hash_and_vkey_follow_signed_note_spec() -> None:
    """key hash = SHA-256(name || 0x0A || 0x01 || raw key)[:4]; vkey = name+hex(hash)+base64(0x01||key)."""
    kh = hashlib.sha256(b"chengguan\n\x01" + A.public_key.raw).digest()[:4]
    assert cp.key_hash("chengguan", A.public_key) == kh
    typed_key = base64.b64encode(b"\x01" + A.public_key.raw).decode()
    assert cp.vkey("chengguan", A.public_key) == f"chengguan+{kh.hex()}+{typed_key}"


def test_signed_note_lines_are_em_dash_name_base64() -> None:
    """The note is body, a blank line, then one '— name base64(keyhash||sig)' line per signer;
    the signature is Ed25519 over the body bytes."""
    c = cp.Checkpoint(ORIGIN, 10, ROOT)
    note = cp.sign(c, [("chengguan", A), ("zhujian", B)])
    body, _, sigs = note.partition("\n\n")
    assert body + "\n" == c.body()
    lines = sigs.split("\n")
    assert lines[-1] == "" and len(lines) == 3
    for line, (name, key) in zip(lines[:2], [("chengguan", A), ("zhujian", B)], strict=True):
        dash, got_name, blob = line.split(" ")
        assert dash == "\u2014" and got_name == name
        raw = base64.b64decode(blob)
        assert raw[:4] == cp.key_hash(name, key.public_key)
        assert len(raw) == 68
        assert key.public_key.verify(c.body().encode(), raw[4:])
    got, names = cp.verify(note, VERIFIERS, quorum=2, origin=ORIGIN)
    assert got == c and names == ["chengguan", "zhujian"]


def test_cosign_adds_signatures_once() -> None:
    """A witness co-signs the same body; signing twice with the same key adds nothing."""
    note = cp.sign(cp.Checkpoint(ORIGIN, 10, ROOT), [("chengguan", A)])
    note2 = cp.cosign(note, [("zhujian", B), ("chengguan", A)])
    assert note2.startswith(note)
    assert note2.count("\u2014") == 2
    assert cp.verify(note2, VERIFIERS, quorum=2)[1] == ["chengguan", "zhujian"]


def test_quorum() -> None:
    """Fewer valid known signatures than the quorum is a CheckpointError."""
    note = cp.sign(cp.Checkpoint(ORIGIN, 10, ROOT), [("chengguan", A), ("zhujian", B)])
    cp.verify(note, VERIFIERS, quorum=2)
    with pytest.raises(CheckpointError, match="2 valid signatures; 3 are needed"):
        cp.verify(note, VERIFIERS, quorum=3)


def test_altered_body_fails() -> None:
    """Changing the size or root after signing makes a known signer's line fail."""
    note = cp.sign(cp.Checkpoint(ORIGIN, 10, ROOT), [("chengguan", A)])
    with pytest.raises(CheckpointError, match="does not verify"):
        cp.verify(note.replace("\n10\n", "\n11\n", 1), VERIFIERS)


def test_unknown_signers_are_ignored() -> None:
    """Lines by names or keys the verifier does not know are skipped, not errors."""
    stranger = PrivateKey(alg=ED25519, seed=b"s" * 32)
    note = cp.sign(cp.Checkpoint(ORIGIN, 10, ROOT), [("someone", stranger), ("chengguan", A)])
    assert cp.verify(note, VERIFIERS)[1] == ["chengguan"]
    # Same name, different key: key hash differs, so the line is ignored too.
    note = cp.sign(cp.Checkpoint(ORIGIN, 10, ROOT), [("zhujian", stranger), ("chengguan", A)])
    assert cp.verify(note, VERIFIERS)[1] == ["chengguan"]
    with pytest.raises(CheckpointError):
        cp.verify(cp.sign(cp.Checkpoint(ORIGIN, 10, ROOT), [("someone", stranger)]), VERIFIERS)


def test_wrong_origin() -> None:
    """A checkpoint for another log is refused when the origin is given."""
    note = cp.sign(cp.Checkpoint("other/log", 10, ROOT), [("chengguan", A)])
    with pytest.raises(CheckpointError, match="origin"):
        cp.verify(note, VERIFIERS, origin=ORIGIN)


@pytest.mark.parametrize("body", [
    "", f"{ORIGIN}\n10\n", f"{ORIGIN}\n10\n{base64.b64encode(ROOT).decode()}",
    f"\n10\n{base64.b64encode(ROOT).decode()}\n", f"{ORIGIN}\n010\n{base64.b64encode(ROOT).decode()}\n",
    f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n", f"{ORIGIN}\n\u00b2\n{base64.b64encode(ROOT).decode()}\n",
    f"{ORIGIN}\n\u0661\n{base64.b64encode(ROOT).decode()}\n", f"{ORIGIN}\n10\nnot base64\n",
    f"{ORIGIN}\n10\n{base64.b64encode(ROOT[:31]).decode()}\n", f"{ORIGIN}\n10\n{base64.b64encode(ROOT).decode()}\n\n",
])
def test_malformed_bodies(body: str) -> None:
    """Missing lines, leading zeros, non-ASCII digits, bad roots and empty extension lines raise
    CheckpointError (regression: '²' raised ValueError)."""
    with pytest.raises(CheckpointError):
        cp.Checkpoint.parse_body(body)


@pytest.mark.parametrize("note", [
    "no blank line\n", "a\n1\nAAAA\n\n\u2014 x AAAA", "a\n1\nAAAA\n\n- x AAAA\n", "a\n1\nAAAA\n\n\u2014 x !!!!\n",
    "a\n1\nAAAA\n\n\u2014 x AAAA\n",
])
def test_malformed_notes(note: str) -> None:
    """Notes without a blank line, final newline, em dash, base64 or a long enough signature are refused."""
    with pytest.raises(CheckpointError):
        cp.split_note(note)


@pytest.mark.parametrize("name", ["has space", "a+b", "", "name\n"])
def test_signer_names(name: str) -> None:
    """Signer names may not contain spaces, '+' or newlines (regression: a trailing newline passed)."""
    with pytest.raises(CheckpointError):
        cp.sign(cp.Checkpoint(ORIGIN, 1, ROOT), [(name, A)])
