"""The order is untrusted input: batch signatures checked by every node, block times bounded by the nodes' clocks,
and the solo orderer's front door; with the orderer and the peers faked in memory."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from node_fakes import T0, Cluster, signed_body

from consortium_nodes.http import create_app
from consortium_nodes.ordering import Batch, SoloOrderer
from ledger.core.batch import BatchSignature, batch_signer, sign_batch
from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ, iso
from ledger.errors import BadSignature
from ledger.testing import make_tx

FAR_FUTURE = datetime(2099, 1, 1, tzinfo=CHINA_TZ)


def _raw(cluster: Cluster, *, proposer: str, timestamp: str, txs: list[bytes], signature: BatchSignature | None) -> int:
    """Put a batch into the order exactly as given (whoever could write to the engine)."""
    seq = cluster.orderer.head() + 1
    return cluster.orderer.append_raw(Batch(seq, proposer, timestamp, tuple(txs), signature).to_json())


def _signed_by(cluster: Cluster, key: PrivateKey, *, proposer: str, timestamp: str, txs: list[bytes]) -> int:
    seq = cluster.orderer.head() + 1
    sig = sign_batch(key, seq=seq, proposer=proposer, timestamp=timestamp, txs=txs)
    return _raw(cluster, proposer=proposer, timestamp=timestamp, txs=txs, signature=sig)


def _assert_skipped_everywhere(cluster: Cluster, nodes: list, seq: int, reason: str, tx_id: str) -> None:
    headers = [n.store.header(seq) for n in nodes]
    assert all(h is not None for h in headers) and len({h.hash for h in headers}) == 1  # type: ignore[union-attr]
    for n in nodes:
        block = n.store.block(seq)
        assert block is not None and block.transactions == ()
        assert n.store.known_tx_ids([tx_id]) == set()
        st = n.status()
        assert st["fault"] is None
        assert st["skipped_batches"]["count"] == 1
        assert st["skipped_batches"]["last"]["seq"] == seq and st["skipped_batches"]["last"]["reason"] == reason


def _then_a_good_batch_builds(cluster: Cluster, nodes: list) -> None:
    tx = make_tx(cluster.t.gateway, 99)
    cluster.orderer.append(proposer=nodes[1].name, timestamp=iso(T0 + timedelta(seconds=1)), txs=[tx.encode()])
    cluster.follow()
    cluster.deliver()
    for n in nodes:
        assert n.store.known_tx_ids([tx.tx_id]) == {tx.tx_id}
        assert n.final_height == cluster.orderer.head()


def test_unsigned_batch_becomes_the_same_empty_block_on_every_node(cluster: Cluster) -> None:
    """A batch without a proposer's signature (as anyone who can write to the order could put there) is
    built into no transactions: every node makes the same empty block of it, counts it in ``/status``
    ``skipped_batches`` with reason ``unsigned_batch``, and the next (signed) batch is built as usual."""
    nodes = [cluster.add(n) for n in cluster.names]
    tx = make_tx(cluster.t.gateway, 1)
    seq = _raw(cluster, proposer=nodes[0].name, timestamp=iso(T0), txs=[tx.encode()], signature=None)
    cluster.follow()
    _assert_skipped_everywhere(cluster, nodes, seq, "unsigned_batch", tx.tx_id)
    _then_a_good_batch_builds(cluster, nodes)


def test_batch_signed_by_the_gateway_member_is_skipped_as_forbidden(cluster: Cluster) -> None:
    """A batch signed by a member of the consortium that is not a node (the API's gateway key, which may
    sign transactions) is skipped alike on every node with reason ``forbidden``."""
    nodes = [cluster.add(n) for n in cluster.names]
    tx = make_tx(cluster.t.gateway, 2)
    seq = _signed_by(cluster, cluster.t.gateway, proposer="gateway", timestamp=iso(T0), txs=[tx.encode()])
    cluster.follow()
    _assert_skipped_everywhere(cluster, nodes, seq, "forbidden", tx.tx_id)
    _then_a_good_batch_builds(cluster, nodes)


def test_batch_naming_another_node_as_proposer_is_skipped_as_forbidden(cluster: Cluster) -> None:
    """A node may only propose under its own name: a batch signed by node a that names node b as its
    proposer (so b's name would go into the header) is skipped with reason ``forbidden``."""
    nodes = [cluster.add(n) for n in cluster.names]
    tx = make_tx(cluster.t.gateway, 3)
    a, b = cluster.names[:2]
    seq = _signed_by(cluster, cluster.t.keys[a], proposer=b, timestamp=iso(T0), txs=[tx.encode()])
    cluster.follow()
    _assert_skipped_everywhere(cluster, nodes, seq, "forbidden", tx.tx_id)


def test_batch_signed_by_a_key_the_consortium_does_not_hold_is_skipped(cluster: Cluster) -> None:
    """A batch signed by a key that is not in the consortium document (``mallory``'s own) is skipped
    alike on every node with reason ``unknown_signer``."""
    nodes = [cluster.add(n) for n in cluster.names]
    tx = make_tx(cluster.t.gateway, 4)
    seq = _signed_by(cluster, PrivateKey.generate(), proposer="mallory", timestamp=iso(T0), txs=[tx.encode()])
    cluster.follow()
    _assert_skipped_everywhere(cluster, nodes, seq, "unknown_signer", tx.tx_id)
    _then_a_good_batch_builds(cluster, nodes)


@pytest.mark.parametrize("forgery", ["random_bytes", "other_txs", "other_time", "other_seq", "other_alg"])
def test_badly_signed_batch_is_skipped_as_bad_signature(cluster: Cluster, forgery: str) -> None:
    """A batch carrying a node's key id whose signature does not verify over this batch is skipped alike on
    every node with reason ``bad_signature``: random bytes, a real signature of the node over other
    transactions or another time (the order changed the batch), a real signature for another sequence
    number (a batch copied to a later place of the order), or a signature claiming another algorithm."""
    nodes = [cluster.add(n) for n in cluster.names]
    a = cluster.names[0]
    key = cluster.t.keys[a]
    tx = make_tx(cluster.t.gateway, 5)
    txs, when = [tx.encode()], iso(T0)
    seq = cluster.orderer.head() + 1
    sig = {
        "random_bytes": BatchSignature(key.key_id, key.alg, bytes(64)),
        "other_txs": sign_batch(key, seq=seq, proposer=a, timestamp=when, txs=[make_tx(cluster.t.gateway, 6).encode()]),
        "other_time": sign_batch(key, seq=seq, proposer=a, timestamp=iso(T0 + timedelta(hours=1)), txs=txs),
        "other_seq": sign_batch(key, seq=seq + 7, proposer=a, timestamp=when, txs=txs),
        "other_alg": BatchSignature(key.key_id, "sm2", sign_batch(key, seq=seq, proposer=a, timestamp=when,
                                                                  txs=txs).value),
    }[forgery]
    assert _raw(cluster, proposer=a, timestamp=when, txs=txs, signature=sig) == seq
    cluster.follow()
    _assert_skipped_everywhere(cluster, nodes, seq, "bad_signature", tx.tx_id)
    _then_a_good_batch_builds(cluster, nodes)


def test_signature_of_any_shape_in_the_order_is_read_alike_and_skipped(cluster: Cluster) -> None:
    """A ``signature`` field of the wrong shape in the engine's bytes does not stop the follower: every
    node reads the same (empty) signature and skips the batch."""
    nodes = [cluster.add(n) for n in cluster.names[:2]]
    cluster.orderer.append_raw(b'{"proposer": "chengguan", "timestamp": "2026-11-23T22:15:00+08:00", "txs": [],'
                               b' "signature": {"key_id": 7, "value": "%%%"}}')
    cluster.follow()
    assert all(n.store.height == 0 and n.status()["skipped_batches"]["count"] == 1 for n in nodes)
    assert nodes[0].store.header(0) == nodes[1].store.header(0)


def test_batch_dated_2099_is_built_but_not_cosigned_so_never_final(cluster: Cluster) -> None:
    """A batch a node properly signed but dated 2099 (its clock, or its key, is wrong) becomes the same
    block on every node (the builder is deterministic and reads no clock), but no node whose clock says
    now co-signs a header more than ``max_clock_skew_s`` ahead of it: the block is stored, never final,
    and shows in ``/status`` ``withheld_signatures``; the blocks after it keep its time (block time never
    goes backwards), so they are not final either and the transactions in them stay ``committed``."""
    nodes = [cluster.add(n) for n in cluster.names]
    a = cluster.names[0]
    tx = make_tx(cluster.t.gateway, 7)
    cluster.orderer.append(proposer=a, timestamp=iso(FAR_FUTURE), txs=[tx.encode()])
    cluster.follow()
    cluster.deliver()
    assert {n.store.header(0).hash for n in nodes} == {nodes[0].store.header(0).hash}  # type: ignore[union-attr]
    for n in nodes:
        assert n.store.height == 0 and n.final_height == -1
        assert n.store.signatures(0) == []
        st = n.status()
        assert st["withheld_signatures"]["count"] == 1
        assert st["withheld_signatures"]["first"] == {"height": 0, "timestamp": iso(FAR_FUTURE),
                                                      "reason": "block_time_ahead"}
        assert st["skipped_batches"]["count"] == 0
    later = make_tx(cluster.t.gateway, 8)
    cluster.orderer.append(proposer=cluster.names[1], timestamp=iso(T0), txs=[later.encode()])
    cluster.follow()
    assert [n.chain.sign_withheld() for n in nodes] == [0, 0, 0, 0]  # the clocks still say T0
    cluster.deliver()
    for n in nodes:
        assert n.store.header(1).timestamp == iso(FAR_FUTURE)  # type: ignore[union-attr]
        assert n.final_height == -1 and n.status()["withheld_signatures"]["count"] == 2
        assert n.tx_status(later.tx_id)["status"] == "committed"


def test_block_a_little_ahead_is_cosigned_once_the_clocks_reach_it(cluster: Cluster) -> None:
    """A block timed 20 minutes ahead of the nodes' clocks (more than the default 600 s skew) is not
    co-signed at first; once the clocks are within the skew of its time the nodes co-sign it (the
    syncer's ``sign_withheld``), the signatures travel, and it becomes final with nothing withheld."""
    nodes = [cluster.add(n) for n in cluster.names]
    assert cluster.t.consortium.max_clock_skew_s == 600
    cluster.orderer.append(proposer=cluster.names[0], timestamp=iso(T0 + timedelta(minutes=20)),
                           txs=[make_tx(cluster.t.gateway, 9).encode()])
    cluster.follow()
    cluster.deliver()
    assert all(n.final_height == -1 for n in nodes)
    cluster.now = T0 + timedelta(minutes=9)
    assert [n.chain.sign_withheld() for n in nodes] == [0, 0, 0, 0]
    cluster.now = T0 + timedelta(minutes=11)
    assert [n.chain.sign_withheld() for n in nodes] == [1, 1, 1, 1]
    cluster.deliver()
    for n in nodes:
        assert n.final_height == 0 and len(n.store.signatures(0)) == 4
        assert n.status()["withheld_signatures"] == {"count": 0, "first": None}


def test_withheld_signature_survives_a_restart(cluster: Cluster) -> None:
    """A node restarted on a database holding a block it did not co-sign (timed ahead of its clock)
    knows it at replay and co-signs it once its clock has come close enough."""
    node = cluster.add(cluster.names[0])
    cluster.orderer.append(proposer=cluster.names[1], timestamp=iso(T0 + timedelta(hours=1)),
                           txs=[make_tx(cluster.t.gateway, 10).encode()])
    cluster.follow()
    assert node.store.signatures(0) == []
    node.store.close()
    again = cluster.add(node.name)
    assert again.status()["withheld_signatures"]["count"] == 1
    cluster.now = T0 + timedelta(hours=1)
    assert again.chain.sign_withheld() == 1
    assert [s.key_id for s in again.store.signatures(0)] == [again.key.key_id]


def test_batch_timed_before_the_previous_block_gets_the_previous_time(cluster: Cluster) -> None:
    """Block time is monotonic: a properly signed batch whose time goes backwards (a proposer's clock lags)
    is built with the previous block's time on every node alike, not skipped; the chain verifies."""
    from ledger.verify.chain import verify_chain

    nodes = [cluster.add(n) for n in cluster.names]
    tx1, tx2 = make_tx(cluster.t.gateway, 11), make_tx(cluster.t.gateway, 12)
    cluster.orderer.append(proposer=cluster.names[0], timestamp=iso(T0), txs=[tx1.encode()])
    cluster.orderer.append(proposer=cluster.names[1], timestamp=iso(T0 - timedelta(hours=3)), txs=[tx2.encode()])
    cluster.follow()
    cluster.deliver()
    for n in nodes:
        assert n.store.header(1).timestamp == iso(T0)  # type: ignore[union-attr]
        assert n.store.known_tx_ids([tx2.tx_id]) == {tx2.tx_id} and n.final_height == 1
        assert n.status()["skipped_batches"]["count"] == 0
    assert verify_chain(str(nodes[0].store.engine.url), cluster.t.consortium, workers=1).ok


def test_the_nodes_own_batches_are_signed_by_their_batcher(cluster: Cluster) -> None:
    """The batcher signs each batch with its node's member key for the number it gets, so the node's own
    submissions are built into a block (not skipped)."""
    node = cluster.add(cluster.names[2])
    tx = make_tx(cluster.t.gateway, 13)
    assert node.submit([tx.to_dict()])[0].status == "accepted"
    assert node.batcher.step() == 1
    batch = cluster.orderer.read(-1)[0]
    assert batch.signature is not None and batch.signature.key_id == node.key.key_id
    cluster.follow()
    assert node.tx_status(tx.tx_id)["status"] == "committed" and node.status()["skipped_batches"]["count"] == 0


# -- the solo orderer's front door -------------------------------------------------------------------
@pytest.fixture
def door(cluster: Cluster, tmp_path):
    solo = SoloOrderer(url=f"sqlite:///{tmp_path / 'orderer.db'}")
    node = cluster.add(cluster.names[0])
    yield create_app(node, solo=solo).test_client(), solo
    solo.close()


def test_front_door_refuses_an_unauthenticated_append(door) -> None:
    """``POST /v1/order/append`` with an unsigned body (the ``curl`` anyone could send) is refused 403
    ``unsigned_batch`` with the usual error JSON, and nothing is appended."""
    client, solo = door
    r = client.post("/v1/order/append", json={"proposer": "x", "timestamp": "not-a-time", "txs": []})
    assert r.status_code == 403 and r.json["reason"] == "unsigned_batch" and r.json["error"]["code"] == "unsigned_batch"
    assert solo.head() == -1


def test_front_door_refuses_batches_not_signed_by_a_node(cluster: Cluster, door) -> None:
    """The front door refuses a batch signed by the gateway (403 ``forbidden``), by a key the consortium
    does not hold (403 ``unknown_signer``) or badly signed (403 ``bad_signature``); nothing is appended."""
    client, solo = door
    when = iso(T0)
    cases = [
        (signed_body(cluster.t.gateway, proposer="gateway", seq=0, timestamp=when, txs=[]), "forbidden"),
        (signed_body(PrivateKey.generate(), proposer="mallory", seq=0, timestamp=when, txs=[]), "unknown_signer"),
        ({**signed_body(cluster.t.keys[cluster.names[0]], proposer=cluster.names[0], seq=0, timestamp=when,
                        txs=[]), "timestamp": iso(T0 + timedelta(seconds=1))}, "bad_signature"),
    ]
    for body, reason in cases:
        r = client.post("/v1/order/append", json=body)
        assert r.status_code == 403 and r.json["reason"] == reason, (reason, r.json)
    assert solo.head() == -1


def test_front_door_refuses_a_batch_timed_far_ahead_of_its_clock(cluster: Cluster, door) -> None:
    """A batch properly signed by a node but dated 2099 is refused by the solo orderer, whose clock says
    now: 422 ``block_time_ahead`` (had it reached the order, no node would co-sign its block)."""
    client, solo = door
    a = cluster.names[0]
    r = client.post("/v1/order/append", json=signed_body(cluster.t.keys[a], proposer=a, seq=0,
                                                         timestamp="2099-01-01T00:00:00+08:00", txs=[]))
    assert r.status_code == 422 and r.json["reason"] == "block_time_ahead"
    assert solo.head() == -1


def test_front_door_appends_only_the_next_number_and_answers_the_head(cluster: Cluster, door) -> None:
    """A signed batch names the sequence number it was signed for: the front door appends it only if it is
    the next one, else answers 409 ``order_conflict`` with the real ``head`` to sign for ``head + 1``."""
    client, solo = door
    a = cluster.names[0]
    key = cluster.t.keys[a]
    assert client.post("/v1/order/append", json=signed_body(key, proposer=a, seq=0, timestamp=iso(T0),
                                                            txs=[])).json == {"seq": 0}
    again = client.post("/v1/order/append", json=signed_body(key, proposer=a, seq=0, timestamp=iso(T0), txs=[]))
    assert again.status_code == 409 and again.json["reason"] == "order_conflict" and again.json["head"] == 0
    ahead = client.post("/v1/order/append", json=signed_body(key, proposer=a, seq=5, timestamp=iso(T0), txs=[]))
    assert ahead.status_code == 409 and ahead.json["head"] == 0
    unnumbered = signed_body(key, proposer=a, seq=1, timestamp=iso(T0), txs=[])
    del unnumbered["seq"]
    assert client.post("/v1/order/append", json=unnumbered).status_code == 400
    assert solo.head() == 0


def test_batch_signer_signs_the_number_it_is_given() -> None:
    """One signer serves every retry of an append: the signature for each number verifies only there."""
    from ledger.core.batch import check_batch
    from ledger.testing import throwaway_consortium

    t = throwaway_consortium(nodes=1)
    name = t.consortium.nodes[0].name
    sign = batch_signer(t.keys[name], proposer=name, timestamp=iso(T0), txs=[b"{}"])
    signer = check_batch(t.consortium, seq=3, proposer=name, timestamp=iso(T0), txs=[b"{}"], signature=sign(3))
    assert signer.name == name
    with pytest.raises(BadSignature) as info:
        check_batch(t.consortium, seq=4, proposer=name, timestamp=iso(T0), txs=[b"{}"], signature=sign(3))
    assert info.value.reason == "bad_signature"


def test_skipped_batch_names_its_proposer_in_at_most_64_characters(cluster: Cluster) -> None:
    """The proposer of a batch that fails its check is unauthenticated text: its empty block's header
    carries at most 64 characters of it (whoever writes to the order cannot grow every node's headers)."""
    from consortium_nodes.chain import MAX_SKIPPED_PROPOSER

    nodes = [cluster.add(n) for n in cluster.names[:2]]
    _raw(cluster, proposer="m" * 100_000, timestamp=iso(T0), txs=[], signature=None)
    cluster.follow()
    assert all(n.store.header(0).proposer == "m" * MAX_SKIPPED_PROPOSER for n in nodes)  # type: ignore[union-attr]


def test_http_orderer_signs_again_for_the_next_number_after_losing_the_race(cluster: Cluster, tmp_path) -> None:
    """A non-leader node's solo client (``HttpOrderer``) signs each batch for the number after the newest
    head it has seen; when another proposer took that number the leader answers 409 with the head and the
    client signs for the next one: every batch in the order then verifies at its own position."""
    import threading

    from werkzeug.serving import make_server

    from consortium_nodes.ordering import HttpOrderer
    from ledger.core.batch import check_batch

    solo = SoloOrderer(url=f"sqlite:///{tmp_path / 'orderer.db'}")
    server = make_server("127.0.0.1", 0, create_app(cluster.add(cluster.names[0]), solo=solo), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    b, c = cluster.names[1:3]
    ob, oc = HttpOrderer(url=url), HttpOrderer(url=url)
    try:
        def append(orderer: HttpOrderer, name: str, n: int) -> int:
            when, txs = iso(T0), [make_tx(cluster.t.gateway, n).encode()]
            return orderer.append(proposer=name, timestamp=when, txs=txs,
                                  sign=batch_signer(cluster.t.keys[name], proposer=name, timestamp=when, txs=txs))

        assert append(ob, b, 1) == 0
        assert append(oc, c, 2) == 1  # oc had seen no head: it asks first
        assert append(ob, b, 3) == 2  # ob guessed 1 (its own last), lost, and signed again for 2
        assert append(oc, c, 4) == 3
        batches = solo.read(-1)
        assert [x.seq for x in batches] == [0, 1, 2, 3]
        for x in batches:
            check_batch(cluster.t.consortium, seq=x.seq, proposer=x.proposer, timestamp=x.timestamp, txs=x.txs,
                        signature=x.signature)
    finally:
        ob.close()
        oc.close()
        server.shutdown()
        thread.join(timeout=5)
        solo.close()
