"""Signed tree heads in the C2SP tlog-checkpoint format, as C2SP signed notes with several signers."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ledger.core.crypto import ED25519, PrivateKey, PublicKey
from ledger.core.encoding import b64, unb64
from ledger.errors import CheckpointError, EncodingError

_NAME_RE = re.compile(r"^[^\s+]+$")
#: C2SP signed-note signature type byte for Ed25519.
_ED25519_TYPE = b"\x01"


@dataclass(frozen=True)
class Checkpoint:
    """origin, tree size and root hash of the transaction log (C2SP tlog-checkpoint)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        """The note text: ``origin\\nsize\\nbase64(root)\\n`` plus any extension lines."""
        lines = [self.origin, str(self.size), b64(self.root), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse_body(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise CheckpointError("checkpoint body must be at least three newline-terminated lines")
        origin, size_s, root_s, *ext = lines[:-1]
        if not origin or not re.fullmatch(r"0|[1-9][0-9]*", size_s):
            raise CheckpointError("checkpoint origin or size is malformed")
        try:
            root = unb64(root_s, what="checkpoint root")
        except EncodingError as exc:
            raise CheckpointError(str(exc)) from exc
        if len(root) != 32:
            raise CheckpointError("checkpoint root must be 32 bytes")
        if any(not line for line in ext):
            raise CheckpointError("checkpoint extension lines must not be empty")
        return cls(origin=origin, size=int(size_s), root=root, extensions=tuple(ext))


def key_hash(name: str, public_key: PublicKey) -> bytes:
    """C2SP signed-note key hash: first 4 bytes of SHA-256(name || 0x0A || 0x01 || key)."""
    if public_key.alg != ED25519:
        raise CheckpointError(f"no signed-note type for {public_key.alg}")
    return hashlib.sha256(name.encode() + b"\n" + _ED25519_TYPE + public_key.raw).digest()[:4]


def vkey(name: str, public_key: PublicKey) -> str:
    """The signed-note verifier key string ``name+hash+base64(type||key)``."""
    return f"{name}+{key_hash(name, public_key).hex()}+{b64(_ED25519_TYPE + public_key.raw)}"


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_hash: bytes
    signature: bytes

    def line(self) -> str:
        return f"\u2014 {self.name} {b64(self.key_hash + self.signature)}\n"


def sign(checkpoint: Checkpoint, signers: Sequence[tuple[str, PrivateKey]]) -> str:
    """A signed note over the checkpoint, one signature line per (name, key)."""
    return _with_signatures(checkpoint.body(), [], signers)


def cosign(note: str, signers: Sequence[tuple[str, PrivateKey]]) -> str:
    """Add signature lines to an existing note (a witness co-signing the same body)."""
    body, sigs = split_note(note)
    return _with_signatures(body, sigs, signers)


def _with_signatures(
    body: str, sigs: list[NoteSignature], signers: Sequence[tuple[str, PrivateKey]]
) -> str:
    if not signers and not sigs:
        raise CheckpointError("a signed note needs at least one signature")
    have = {(s.name, s.key_hash) for s in sigs}
    lines = [s.line() for s in sigs]
    for name, key in signers:
        if not _NAME_RE.fullmatch(name):
            raise CheckpointError(f"signer name {name!r} may not contain spaces or '+'")
        kh = key_hash(name, key.public_key)
        if (name, kh) in have:
            continue
        lines.append(NoteSignature(name, kh, key.sign(body.encode())).line())
    return body + "\n" + "".join(lines)


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its body and parsed signature lines."""
    idx = note.rfind("\n\n")
    if idx < 0:
        raise CheckpointError("signed note has no blank line before its signatures")
    body, sig_text = note[: idx + 1], note[idx + 2 :]
    sigs: list[NoteSignature] = []
    if not sig_text.endswith("\n"):
        raise CheckpointError("signed note must end with a newline")
    for line in sig_text[:-1].split("\n"):
        m = re.fullmatch(r"\u2014 (\S+) (\S+)", line)
        if m is None:
            raise CheckpointError(f"malformed signature line {line!r}")
        try:
            raw = unb64(m.group(2), what="note signature")
        except EncodingError as exc:
            raise CheckpointError(str(exc)) from exc
        if len(raw) < 5:
            raise CheckpointError("note signature too short")
        sigs.append(NoteSignature(m.group(1), raw[:4], raw[4:]))
    return body, sigs


def verify(
    note: str, verifiers: Mapping[str, PublicKey], *, quorum: int = 1, origin: str | None = None
) -> tuple[Checkpoint, list[str]]:
    """Check a signed checkpoint note: at least ``quorum`` known signers must verify.

    Returns the checkpoint and the names whose signatures verified.  Unknown
    signature lines are ignored, as the signed-note spec requires.
    """
    body, sigs = split_note(note)
    cp = Checkpoint.parse_body(body)
    if origin is not None and cp.origin != origin:
        raise CheckpointError(f"checkpoint origin {cp.origin!r} is not {origin!r}")
    good: list[str] = []
    for s in sigs:
        pk = verifiers.get(s.name)
        if pk is None or key_hash(s.name, pk) != s.key_hash:
            continue
        if not pk.verify(body.encode(), s.signature):
            raise CheckpointError(f"signature by {s.name} does not verify")
        if s.name not in good:
            good.append(s.name)
    if len(good) < quorum:
        raise CheckpointError(f"checkpoint has {len(good)} valid signatures; {quorum} are needed")
    return cp, good
