"""The signature stream's frames: what a receiver reads from a stream, and what it refuses."""

from __future__ import annotations

import io

import pytest

from consortium_nodes.errors import MalformedStream
from consortium_nodes.signature_stream import MAX_FRAME, Streams, _refused, encode_message, frame, frames, receive


def _stream(*parts: bytes) -> io.BytesIO:
    return io.BytesIO(b"".join(parts))


def test_frames_are_read_by_their_length_and_heartbeats_are_skipped():
    """Two frames with a heartbeat between them give the two bodies, whatever bytes they hold."""
    a, b = b'{"signatures":[]}', b"x" * 300
    assert list(frames(_stream(frame(a), frame(b""), frame(b)))) == [a, b]


@pytest.mark.parametrize("data", [b"zzzzzzzz{}", b"0000000", b"00000010{}", b"%08x" % (MAX_FRAME + 1)])
def test_a_stream_that_is_not_frames_is_malformed(data):
    """A length header that is not 8 hex digits, cut short, a body shorter than its header says, or a frame
    over the limit raise MalformedStream (reason ``malformed``)."""
    with pytest.raises(MalformedStream) as info:
        list(frames(_stream(data)))
    assert info.value.reason == "malformed"


def test_a_frame_too_big_is_not_written():
    """The sender refuses a frame over the limit too."""
    with pytest.raises(MalformedStream):
        frame(b"x" * (MAX_FRAME + 1))


def test_receive_hands_each_frame_to_the_node_until_the_stream_ends():
    """Every frame's ``signatures`` list goes to ``accept`` in order; the counts say what was read."""
    seen: list[list[object]] = []

    def accept(items):
        seen.append(items)
        return len(items)

    body = _stream(frame(encode_message("jiaotong", [{"height": 1}])), frame(encode_message("jiaotong", [])),
                   frame(b'{"signatures":"not a list"}'))
    assert receive(body, accept, stopping=lambda: False) == {"frames": 3, "accepted": 1}
    assert seen == [[{"height": 1}], [], []]


@pytest.mark.parametrize("body", [b"[1,2]", b"not json", b'{"a":' * 200 + b"1" + b"}" * 200])
def test_a_frame_that_is_not_a_json_object_is_malformed(body):
    """A frame that is not a JSON object (or JSON too deep for a node) raises MalformedStream; what came
    before it was accepted."""
    got: list[object] = []
    with pytest.raises(MalformedStream):
        receive(_stream(frame(encode_message("x", [{"h": 0}])), frame(body)), lambda i: got.append(i) or 0,
                stopping=lambda: False)
    assert got == [[{"h": 0}]]


def test_receive_stops_when_the_node_stops():
    """A stopping node reads no frame after the one in hand."""
    got: list[object] = []
    data = _stream(*(frame(encode_message("x", [{"h": i}])) for i in range(3)))
    assert receive(data, lambda i: got.append(i) or 1, stopping=lambda: True) == {"frames": 1, "accepted": 1}


def test_an_answer_other_than_200_is_a_refusal_and_a_closed_stream_is_not():
    """A peer that answers the stream 403 or 404 refused it (the sender waits before opening another); a
    stream closed without an answer (idle timeout, restart) is opened again at once."""
    assert _refused(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n\r\n{}")
    assert _refused(b"HTTP/1.1 404 Not Found\r\n\r\n")
    assert not _refused(b"HTTP/1.1 200 OK\r\n\r\n{}")
    assert not _refused(b"")


def test_a_backlog_too_big_for_a_frame_goes_another_way():
    """A push over the frame limit (the signatures of thousands of blocks queued for a peer that was away) is
    not written to the stream: ``send`` answers False (the caller POSTs it) and opens no connection, instead
    of raising in the peer's sender thread."""
    def connect(name):
        raise AssertionError("no stream is opened for a body that is not a frame")

    streams = Streams(connect=connect, path_of=lambda name: "")
    assert streams.send("zhujian", b"x" * (MAX_FRAME + 1)) is False
    assert streams.status() == {}
