"""Messages between the judge and the worker that runs a candidate's code, over binary pipes, without pickle.

A frame is an 8-byte big-endian length and that many bytes.  A message is a dict with string keys: one
frame of JSON (the header: the fields, with each array replaced by its index) and one frame per array in
numpy's .npy format, read with ``allow_pickle=False``.  Carried: None, bool, int, float, complex, strings
(at most ``MAX_TEXT`` characters), lists, tuples, dicts, numeric numpy arrays and scalars (bool, int,
float, complex; float64 and complex128 scalars arrive as Python's float and complex, which they subclass;
never object arrays: mpmath numbers do not cross) and ``Handle`` (an object that stays in
the worker).  A frame holds at most ``MAX_FRAME`` bytes and a message ``MAX_MESSAGE``; anything
oversized, truncated or malformed raises ``ChannelError`` saying what.
"""

import dataclasses
import io
import json
import struct

import numpy as np

MAX_FRAME = 64 << 20
MAX_MESSAGE = 256 << 20
MAX_TEXT = 1 << 16  # characters of one string
MAX_DEPTH = 32  # nesting of lists, tuples and dicts
NUMERIC = "biufc"  # numpy dtype kinds carried: bool, int, unsigned, float, complex
_PREFIX = struct.Struct(">Q")


class ChannelError(RuntimeError):
    """A message that cannot be sent or was not received whole and well formed."""


class ChannelClosed(ChannelError):
    """The other end closed the pipe before a message began (it exited)."""


@dataclasses.dataclass(frozen=True)
class Handle:
    """An object that stays in the worker: its number there, its type's name, kind and public methods."""
    number: int
    name: str
    kind: str  # "module", "class" or "object"
    methods: tuple = ()


def _size(n):
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n} bytes"


def map_leaves(value, leaf):
    """``value`` with each leaf (what is not a list, tuple or dict) replaced by ``leaf(it)``."""
    if isinstance(value, (list, tuple)):
        items = [map_leaves(v, leaf) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {k: map_leaves(v, leaf) for k, v in value.items()}
    return leaf(value)


def _encode(value, arrays, depth=0):
    if depth > MAX_DEPTH:
        raise ChannelError(f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ChannelError(f"a text of {len(value)} characters (at most {MAX_TEXT} are carried)")
        return value
    if isinstance(value, complex):
        return {"$c": [value.real, value.imag]}
    if isinstance(value, (np.ndarray, np.generic)):
        if value.dtype.kind not in NUMERIC:
            raise ChannelError(f"an array of dtype {value.dtype} is not carried (numbers only: the candidate's "
                               "worker computes in float64, float32 or complex, never mpmath)")
        if value.nbytes > MAX_FRAME:
            raise ChannelError(f"an array of {value.size} entries ({_size(value.nbytes)}) exceeds the "
                               f"{_size(MAX_FRAME)} frame limit")
        arrays.append(np.asarray(value))
        return {"$a" if isinstance(value, np.ndarray) else "$s": len(arrays) - 1}
    if isinstance(value, (list, tuple)):
        items = [_encode(v, arrays, depth + 1) for v in value]
        return items if isinstance(value, list) else {"$t": items}
    if isinstance(value, dict):
        return {"$d": [[_encode(k, arrays, depth + 1), _encode(v, arrays, depth + 1)] for k, v in value.items()]}
    if isinstance(value, Handle):
        return {"$h": [value.number, value.name, value.kind, list(value.methods)]}
    raise ChannelError(f"a {type(value).__name__} is not carried (numbers, strings, arrays, lists, tuples, dicts)")


def _decode(value, arrays, depth=0):
    if depth > MAX_DEPTH:
        raise ChannelError(f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ChannelError(f"a text of {len(value)} characters (at most {MAX_TEXT} are carried)")
        return value
    if isinstance(value, list):
        return [_decode(v, arrays, depth + 1) for v in value]
    if not (isinstance(value, dict) and len(value) == 1):
        raise ChannelError(f"unknown value in the header: {str(value)[:80]!r}")
    (tag, body), = value.items()
    try:
        if tag in ("$a", "$s"):
            array = arrays[body]
            return array if tag == "$a" else array[()]
        if tag == "$c":
            return complex(*body)
        if tag == "$t":
            return tuple(_decode(v, arrays, depth + 1) for v in body)
        if tag == "$d":
            return {_decode(k, arrays, depth + 1): _decode(v, arrays, depth + 1) for k, v in body}
        if tag == "$h":
            number, name, kind, methods = body
            return Handle(int(number), str(name), str(kind), tuple(str(m) for m in methods))
    except ChannelError:
        raise
    except (TypeError, ValueError, IndexError, KeyError) as error:
        raise ChannelError(f"malformed {tag} value: {type(error).__name__}: {error}") from None
    raise ChannelError(f"unknown tag {tag[:20]!r} in the header")


def _array_bytes(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _read_array(data):
    buffer = io.BytesIO(data)
    try:
        array = np.lib.format.read_array(buffer, allow_pickle=False)
    except Exception as error:  # numpy says ValueError, EOFError or others for a bad .npy
        raise ChannelError(f"an array that is not well-formed .npy: {type(error).__name__}: {error}") from None
    if buffer.tell() != len(data):
        raise ChannelError(f"an array frame with {len(data) - buffer.tell()} bytes after the array's data")
    if array.dtype.kind not in NUMERIC:
        raise ChannelError(f"an array of dtype {array.dtype} (only numbers are carried)")
    return array if array.flags.writeable else array.copy()  # the candidate may change its arguments in place


def encode(message):
    """The frames of ``message`` (a dict with string keys); ChannelError if it cannot be carried."""
    if not isinstance(message, dict) or not all(isinstance(k, str) for k in message):
        raise ChannelError("a message is a dict with string keys")
    arrays = []
    fields = {k: _encode(v, arrays) for k, v in message.items()}
    frames = [json.dumps({"fields": fields, "arrays": len(arrays)}).encode()]
    frames += [_array_bytes(a) for a in arrays]
    total = sum(map(len, frames))
    if max(map(len, frames)) > MAX_FRAME or total > MAX_MESSAGE:
        raise ChannelError(f"a message of {_size(total)} exceeds the limits ({_size(MAX_FRAME)} a frame, "
                           f"{_size(MAX_MESSAGE)} a message)")
    return frames


def send(stream, message):
    frames = encode(message)
    stream.write(b"".join(_PREFIX.pack(len(f)) + f for f in frames))
    stream.flush()


def _read_frame(stream, budget, first=False):
    prefix = stream.read(_PREFIX.size)
    if first and not prefix:
        raise ChannelClosed("the pipe closed before an answer began")
    if len(prefix) < _PREFIX.size:
        raise ChannelError(f"truncated: the pipe closed inside a frame's length ({len(prefix)} of 8 bytes)")
    (length,) = _PREFIX.unpack(prefix)
    if length > min(MAX_FRAME, budget):
        raise ChannelError(f"a frame of {_size(length)} exceeds the limits ({_size(MAX_FRAME)} a frame, "
                           f"{_size(MAX_MESSAGE)} a message)")
    data = stream.read(length)
    if len(data) < length:
        raise ChannelError(f"truncated: a frame of {length} bytes ended after {len(data)}")
    return data


def receive(stream):
    """The next message on ``stream``; ChannelClosed at the end of the stream, ChannelError if malformed."""
    header = _read_frame(stream, MAX_MESSAGE, first=True)
    budget = MAX_MESSAGE - len(header)
    try:
        parsed = json.loads(header)
        fields, count = parsed["fields"], parsed["arrays"]
        if not isinstance(fields, dict) or not isinstance(count, int) or count < 0:
            raise ValueError("fields must be an object and arrays a count")
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        raise ChannelError(f"a header that is not the channel's JSON: {type(error).__name__}: "
                           f"{str(error)[:200]}") from None
    arrays = []
    for _ in range(count):
        data = _read_frame(stream, budget)
        budget -= len(data)
        arrays.append(_read_array(data))
    return {k: _decode(v, arrays) for k, v in fields.items()}
