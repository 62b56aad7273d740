"""checks.channel: every carried type crosses unchanged; pickle, objects, oversized, truncated and
malformed frames are refused with a ChannelError that says what."""

import io
import json
import pickle
import struct

import numpy as np
import pytest

from checks import channel


def round_trip(message):
    stream = io.BytesIO()
    channel.send(stream, message)
    stream.seek(0)
    received = channel.receive(stream)
    assert stream.read() == b""  # the message, all of it and nothing more
    return received


def frames(*payloads):
    return io.BytesIO(b"".join(struct.pack(">Q", len(p)) + p for p in payloads))


def header(fields, arrays=0):
    return json.dumps({"fields": fields, "arrays": arrays}).encode()


def npy(array, allow_pickle=False):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def test_every_carried_type_crosses_unchanged():
    arrays = {"f64": np.arange(6.0).reshape(2, 3), "fortran": np.asfortranarray(np.ones((3, 2))),
              "f32": np.float32([1.5, -2]), "c128": np.array([1 + 2j, 3]), "i64": np.arange(4), "bool": np.eye(2) > 0,
              "empty": np.zeros((0, 3)), "0-d": np.array(7.0), "view": np.arange(10.0)[::3]}
    message = {"op": "call", "none": None, "flags": [True, False], "int": 2**70, "float": [1.5, float("inf")],
               "complex": 1 - 2j, "text": "ü" * 100, "tuple": (1, (2, "x")),
               "dict": {"a": [1], 3: (None,), (1, 2): "k"},
               "handle": channel.Handle(3, "FCLayer", "object", ("forward", "backward")),
               "scalars": [np.float32(0.25), np.int64(-3), np.complex64(1j), np.bool_(True)],
               "python_subclasses": [np.float64(0.5), np.complex128(2j)], **arrays}
    received = round_trip(message)
    for key in ("none", "flags", "int", "float", "complex", "text", "tuple", "dict", "handle"):
        assert received[key] == message[key] and type(received[key]) is type(message[key]), key
    for name, array in arrays.items():
        got = received[name]
        assert got.dtype == array.dtype and got.shape == array.shape and np.array_equal(got, array), name
        assert got.flags.writeable, name  # the candidate may change its arguments in place
    for sent, got in zip(message["scalars"], received["scalars"]):
        assert type(got) is type(sent) and got == sent
    assert [type(x) for x in received["python_subclasses"]] == [float, complex]  # float64 is a Python float
    assert received["python_subclasses"] == [0.5, 2j]
    assert np.isnan(round_trip({"x": float("nan")})["x"])


NESTED = [0]
for _ in range(40):
    NESTED = [NESTED]


@pytest.mark.parametrize("value, says", [
    (np.array([object()], dtype=object), "an array of dtype object is not carried"),
    (np.array(["text"]), "an array of dtype <U4 is not carried"),
    (object(), "a object is not carried"),
    ({1, 2}, "a set is not carried"),
    ("x" * (channel.MAX_TEXT + 1), f"a text of {channel.MAX_TEXT + 1} characters"),
    (NESTED, "nested deeper than 32 levels"),
])
def test_what_is_not_carried_is_refused_when_sent(value, says):
    with pytest.raises(channel.ChannelError, match=says.replace("(", r"\(").replace("[", r"\[")):
        channel.send(io.BytesIO(), {"value": value})


def test_pickle_is_refused_when_received():
    pickled = npy(np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(channel.ChannelError, match="not well-formed .npy: ValueError: Object arrays cannot be loaded"):
        channel.receive(frames(header({"x": {"$a": 0}}, 1), pickled))
    raw = pickle.dumps({"op": "value"})  # a pickle where the header belongs
    with pytest.raises(channel.ChannelError, match="a header that is not the channel's JSON"):
        channel.receive(frames(raw))


def test_a_large_array_is_refused_by_the_frame_limit(monkeypatch):
    monkeypatch.setattr(channel, "MAX_FRAME", 1000)
    with pytest.raises(channel.ChannelError, match=r"an array of 1000 entries \(8000 bytes\) exceeds the 1000 bytes"):
        channel.send(io.BytesIO(), {"value": np.zeros(1000)})
    monkeypatch.setattr(channel, "MAX_MESSAGE", 3000)
    with pytest.raises(channel.ChannelError, match="exceeds the limits"):  # each array fits, the message not
        channel.send(io.BytesIO(), {"value": [np.zeros(100)] * 40})


@pytest.mark.parametrize("stream, says", [
    (io.BytesIO(struct.pack(">Q", channel.MAX_FRAME + 1)), "a frame of 64 MiB exceeds the limits"),
    (io.BytesIO(struct.pack(">Q", 2**63)), "exceeds the limits"),
    (io.BytesIO(b"\x00\x00\x00"), r"truncated: the pipe closed inside a frame's length \(3 of 8 bytes\)"),
    (io.BytesIO(struct.pack(">Q", 100) + b"{}"), "truncated: a frame of 100 bytes ended after 2"),
    (frames(b"{not json"), "a header that is not the channel's JSON: JSONDecodeError"),
    (frames(header({"x": 1}, -1)), "a header that is not the channel's JSON"),
    (frames(header({"x": {"$a": 0}}, 1)), r"truncated: the pipe closed inside a frame's length \(0 of 8 bytes\)"),
    (frames(header({"x": {"$a": 5}}, 1), npy(np.zeros(2))), "malformed \\$a value: IndexError"),
    (frames(header({"x": {"$p": "os.system"}})), "unknown tag '\\$p' in the header"),
    (frames(header({"x": {"a": 1, "b": 2}})), "unknown value in the header"),
    (frames(header({"x": {"$a": 0}}, 1), npy(np.zeros(4))[:-8]), "not well-formed .npy"),
    (frames(header({"x": {"$a": 0}}, 1), npy(np.zeros(4)) + b"extra"), "5 bytes after the array's data"),
    (frames(header({"x": {"$h": [1, "A"]}})), "malformed \\$h value: ValueError"),
])
def test_oversized_truncated_and_malformed_frames_are_channel_errors(stream, says):
    with pytest.raises(channel.ChannelError, match=says):
        channel.receive(stream)


def test_a_closed_pipe_before_a_message_is_told_apart():
    with pytest.raises(channel.ChannelClosed):
        channel.receive(io.BytesIO())
