"""Per-object record chains and the object map (ledger.eticket.heads): the heads, the map at any past height,
its RFC 9162 proofs, the machine keeping them, and the completeness checks of a v2 export."""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ledger.core import checkpoint as cp
from ledger.core.tree import hash_leaf, root_from_hashes, verify_inclusion_hash
from ledger.eticket import heads, queries
from ledger.eticket.heads import ObjectHeads
from ledger.eticket.testing import make_world
from ledger.verify.provenance import FORMAT, completeness_problems, objects_line

NAMES = ["ticket:T-1", "truck:TR-1", "permit:PM-1", "project:P-001"]
touches = st.lists(st.tuples(st.sampled_from(NAMES), st.integers(0, 3)), max_size=40)


def _tx(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def _replay(steps: list[tuple[str, int]]) -> tuple[ObjectHeads, list[tuple[str, str, int]]]:
    h, height, done = ObjectHeads(), 0, []
    for i, (name, step) in enumerate(steps):
        height += step
        h.touch(name, _tx(i), height)
        done.append((name, _tx(i), height))
    return h, done


@given(touches, st.integers(0, 130))
def test_the_map_at_any_height_is_the_naive_one(steps: list[tuple[str, int]], at: int) -> None:
    """At every height the map is the RFC 9162 tree over the objects in first-touch order, each leaf the
    object's record count and chain head over its records up to that height; every proof verifies."""
    h, done = _replay(steps)
    upto = [d for d in done if d[2] <= at]
    order = list(dict.fromkeys(name for name, _, _ in upto))
    leaves = []
    for name in order:
        ids = [tx for n, tx, _ in upto if n == name]
        leaves.append(hash_leaf(heads.leaf_data(name, len(ids), heads.chain_head(name, ids))))
        assert h.head_at(name, at) == (len(ids), heads.chain_head(name, ids))
    assert h.root_at(at) == (len(leaves), root_from_hashes(leaves))
    for name in NAMES:
        proof = h.proof_at(name, at)
        if name not in order:
            assert proof is None
            continue
        assert proof is not None and proof["index"] == order.index(name) and proof["size"] == len(leaves)
        leaf = hash_leaf(heads.leaf_data(name, proof["count"], bytes.fromhex(proof["head"])))
        assert verify_inclusion_hash(leaf, proof["index"], proof["size"], [bytes.fromhex(x) for x in proof["hashes"]],
                                     bytes.fromhex(proof["root"]))


def test_the_machine_chains_every_valid_record_of_an_object() -> None:
    """The machine's map holds each object's valid records (its history) chained in order; a refused
    transaction adds nothing; the checkpoint line names the height, map size and root."""
    world = make_world()
    assert world.submit("ticket.void", {"ticket_id": "T-404", "reason": "作废"}, "operator:u1").code != "valid"
    m = world.machine
    big = 10**9
    for kind, key in (("truck", "TR-1"), ("project", "P-001"), ("company", "C-01")):
        proof = queries.object_proof(m, kind, key, big)
        assert proof is not None
        ids = queries.history(m, kind, key)
        assert proof["count"] == len(ids) >= 1
        assert proof["head"] == heads.chain_head(f"{kind}:{key}", ids).hex()
    assert queries.object_proof(m, "ticket", "T-404", big) is None
    line = m.checkpoint_extension(big)
    size, root = m.state.heads.root_at(big)
    assert line == heads.extension_line(big, size, root) and line.startswith("muck-ledger/objects/v1 ")


def _export(n: int = 3) -> tuple[dict[str, Any], cp.Checkpoint]:
    """A v2 export skeleton of object truck:TR-9 with n records, under a checkpoint committing to its map."""
    h = ObjectHeads()
    h.touch("truck:TR-0", _tx(99), 0)
    records = []
    for i in range(n):
        h.touch("truck:TR-9", _tx(i), i + 1)
        records.append({"tx_id": _tx(i), "index": i + 1, "code": "valid"})
    proof = h.proof_at("truck:TR-9", n)
    assert proof is not None
    size, root = h.root_at(n)
    c = cp.Checkpoint("origin", n + 1, b"\0" * 32, (heads.extension_line(n, size, root),))
    obj = {k: proof[k] for k in ("name", "height", "count", "head", "index", "size", "hashes")}
    return {"format": FORMAT, "subject": {"kind": "truck", "id": "TR-9"}, "object": obj, "records": records}, c


def test_completeness_checks_name_each_tampering() -> None:
    """The genuine records pass; removed, swapped, duplicated, added, replaced records and a wrong subject
    each give their own one-line problem."""
    export, c = _export()
    assert objects_line(c) is not None and completeness_problems(export, c) == []
    cases = {
        "removed": lambda e: e["records"].pop(1),
        "reordered": lambda e: e["records"].reverse(),
        "duplicated": lambda e: e["records"].insert(1, dict(e["records"][0])),
        "added": lambda e: e["records"].append({"tx_id": _tx(50), "index": 50, "code": "valid"}),
        "replaced": lambda e: e["records"].__setitem__(1, {"tx_id": _tx(51), "index": 2, "code": "valid"}),
        "not a valid transaction": lambda e: e["records"].append({"tx_id": _tx(52), "index": 60, "code": "forbidden"}),
        "not truck:TR-0": lambda e: e["subject"].update(id="TR-0"),
    }
    seen = set()
    for word, tamper in cases.items():
        e, _ = _export()
        tamper(e)
        problems = completeness_problems(e, c)
        assert len(problems) == 1 and word in problems[0], (word, problems)
        seen.add(problems[0])
    assert len(seen) == len(cases)


def test_a_record_after_a_root_was_asked_changes_the_root_of_its_height_only() -> None:
    """A root asked for mid-block is recomputed once the block records more; earlier heights keep theirs."""
    h = ObjectHeads()
    h.touch("truck:TR-1", _tx(1), 1)
    h.touch("truck:TR-2", _tx(2), 2)
    at1, at2 = h.root_at(1), h.root_at(2)
    h.touch("truck:TR-1", _tx(3), 2)
    assert h.root_at(1) == at1 and h.root_at(2) != at2
    fresh = ObjectHeads()
    for i, (name, height) in enumerate([("truck:TR-1", 1), ("truck:TR-2", 2), ("truck:TR-1", 2)], start=1):
        fresh.touch(name, _tx(i), height)
    assert h.root_at(2) == fresh.root_at(2)
