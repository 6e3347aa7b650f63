"""The checkpoint's membership line: the membership history up to a checkpoint, co-signed by the nodes.

``muck-ledger/membership/v1 <height> <version> <base64 digest>`` commits to every membership in force from the
genesis to the one after block ``height`` (the checkpoint's final block): ``version`` is the number of changes
governance applied (:attr:`~ledger.core.governance_state.Governance.version`), ``digest`` chains the eras, each
with the log index it is in force from (docs/PROVENANCE.md "The membership line" specifies the bytes).  Every
witness computes the line from its own chain and co-signs only an identical one, so a provenance export whose
governance changes leave one out, reorder one or alter one (a retirement, a rotation) no longer gives the
co-signed digest.  Pure: a function of the eras.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence

from ledger.core.consortium import Consortium, Member
from ledger.errors import CheckpointError

#: First word of the checkpoint extension line.
EXTENSION = "muck-ledger/membership/v1"
#: ``parameters["governance_quorum"]`` when a membership does not set it (ledger.core.governance)
DEFAULT_RULE = "two_thirds"

#: ``(log index it is in force from, version, membership)``: the genesis ``(0, 0, genesis)`` first
Era = tuple[int, int, Consortium]

_LINE_RE = re.compile(r"(0|[1-9][0-9]*) (0|[1-9][0-9]*) ([A-Za-z0-9+/]{43}=)")


def member_line(m: Member) -> bytes:
    """``hex(utf8(name)) key_id hex(raw key) roles not_before not_after`` and a newline (``-`` for no validity)."""
    validity = ("-", "-") if m.validity is None else (m.validity.not_before, m.validity.not_after)
    fields = (m.name.encode().hex(), m.key_id, m.public_key.raw.hex(), ",".join(sorted(m.roles)), *validity)
    return (" ".join(fields) + "\n").encode()


def era_data(start: int, version: int, consortium: Consortium) -> bytes:
    """One era's bytes: the context, its first log index, its version, the governance quorum rule, then one
    :func:`member_line` per member in force, sorted by the UTF-8 bytes of the name."""
    rule = str(consortium.parameters.get("governance_quorum", DEFAULT_RULE))
    head = f"{EXTENSION}\n{start}\n{version}\ngovernance_quorum {rule}\n".encode()
    members = sorted(consortium.members, key=lambda m: m.name.encode())
    return head + b"".join(member_line(m) for m in members)


def history_digest(eras: Sequence[Era]) -> bytes:
    """``h_0 = SHA-256(era_0)``, ``h_k = SHA-256(h_{k-1} || era_k)``; the last ``h``."""
    if not eras or eras[0][:2] != (0, 0):
        raise CheckpointError("a membership history begins with the genesis at log index 0, version 0")
    h = b""
    for start, version, consortium in eras:
        h = hashlib.sha256(h + era_data(start, version, consortium)).digest()
    return h


def extension_line(height: int, eras: Sequence[Era]) -> str:
    """The checkpoint line for the membership history ``eras`` up to the end of block ``height``."""
    digest = base64.b64encode(history_digest(eras)).decode()
    return f"{EXTENSION} {height} {eras[-1][1]} {digest}"


def parse_line(extensions: Sequence[str]) -> tuple[int, int, bytes] | None:
    """``(height, version, digest)`` of the membership line among a checkpoint's extension lines (None without
    one); :class:`CheckpointError` for a malformed one."""
    for line in extensions:
        word, _, rest = line.partition(" ")
        if word != EXTENSION:
            continue
        m = _LINE_RE.fullmatch(rest)
        if m is None:
            raise CheckpointError("malformed membership line in the checkpoint")
        return int(m.group(1)), int(m.group(2)), base64.b64decode(m.group(3))
    return None
