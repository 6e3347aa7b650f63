"""The etcd orderer's parts that need no etcd: the wire helpers, retry classification and the watch's hand-over."""

from __future__ import annotations

import requests
from etcd3gw import exceptions as etcd_exc
from urllib3.exceptions import ReadTimeoutError

from consortium_nodes.etcd_client import b64, int_value, is_retryable, kvs_of, range_op, unb64
from consortium_nodes.etcd_watch import BatchWatch, _is_read_timeout
from consortium_nodes.ordering import Batch


def test_wire_helpers_round_trip() -> None:
    """Keys and values travel base64-encoded; a range operation names its key, end and limit; the head of an
    empty range is -1."""
    assert unb64(b64("/muck/x/head")) == b"/muck/x/head"
    assert range_op("a", "b", 3) == {"request_range": {"key": b64("a"), "range_end": b64("b"), "limit": 3}}
    assert range_op("a") == {"request_range": {"key": b64("a")}}
    assert int_value(kvs_of({"response_range": {"kvs": [{"value": b64("41")}]}})) == 41
    assert int_value(kvs_of({})) == -1


def test_transient_failures_are_retried_and_refusals_are_not() -> None:
    """A dead member or a connection failure is retried on another endpoint; a refusal (e.g. request too
    large, gRPC code 3) is not."""
    assert is_retryable(requests.ConnectionError("down"))
    assert is_retryable(etcd_exc.ConnectionFailedError())
    assert not is_retryable(etcd_exc.Etcd3Exception(detail_text='{"code": 3}'))
    assert is_retryable(etcd_exc.Etcd3Exception(detail_text='{"code": 14}'))


def test_an_idle_watch_stream_is_told_apart_by_type_not_message() -> None:
    """The read timeout of an idle watch stream (urllib3's ReadTimeoutError inside requests' ConnectionError)
    re-opens the watch on the same member; any other connection error moves to the next member."""
    try:
        try:
            raise ReadTimeoutError(None, "/v3/watch", "no message")  # type: ignore[arg-type]
        except ReadTimeoutError as inner:
            raise requests.ConnectionError(inner) from None
    except requests.ConnectionError as exc:
        assert _is_read_timeout(exc)
    assert not _is_read_timeout(requests.ConnectionError("Read timed out."))


def test_watch_hands_over_consecutive_batches_and_wakes_on_a_newer_revision() -> None:
    """Batches the watch delivered are handed to a reader in order from ``after + 1`` (older ones are
    dropped); a reader waiting for a batch wakes with False when a newer revision came without it."""
    heads: list[int] = []
    watch = BatchWatch(endpoints=["http://127.0.0.1:9"], key="k/", range_end="k0", request_timeout=0.1,
                       poll_interval=0.01, preferred=lambda: 0, saw_head=heads.append, name="test-watch")
    watch.ensure = lambda: None  # type: ignore[method-assign]  # no stream: the test notes revisions itself
    batches = [(Batch(seq=s, proposer="a", timestamp="t", txs=()), 10 + s) for s in (3, 4, 6)]
    watch._note(14, live=True, batches=batches)
    assert [b.seq for b, _ in watch.take(2, 10)] == [3, 4]
    assert [b.seq for b, _ in watch.take(3, 10)] == [4]
    assert heads == [6]
    assert watch.wait(14, 0.05, want=6) is True  # delivered already
    assert watch.wait(10, 0.05, want=5) is False  # revision 14 > 10 without batch 5: read etcd
    watch.stop()
