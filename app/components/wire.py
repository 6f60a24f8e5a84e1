"""The binary framing of the live views' messages, written once (common.js decodes it).

A message: a 4-byte little-endian header length, the JSON header, padding to 4 bytes, then the
arrays (int32, float32 or float16, each padded to 4 bytes; the header's "arrays" names each
one's dtype, offset and length). A feed frame packs one message per channel the same way
(`pack_parts`: the header's "parts" names each one's offset and length)."""
from __future__ import annotations

import json

import numpy as np

_CODES = {np.int32: "i4", np.float32: "f4", np.float16: "f2"}
_DTYPES = {v: k for k, v in _CODES.items()}
THEMES = ("auto", "light", "dark")


def check_choice(name: str, value, allowed) -> None:
    """ValueError naming the argument, the value and what is allowed."""
    if value not in allowed:
        raise ValueError(f"{name}: one of {', '.join(map(str, allowed))}; got {value!r}")


def half(w: np.ndarray) -> np.ndarray:
    """Weights travel as float16 (3 significant digits: more than the drawing or the hover
    text shows); what the page holds is this rounding."""
    return np.asarray(w, dtype=np.float32).astype(np.float16)


def _framed(header: dict, blobs: list[bytes]) -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    pad = b"\0" * ((-(4 + len(head))) % 4)
    return len(head).to_bytes(4, "little") + head + pad + b"".join(blobs)


def _split(msg: bytes) -> tuple[dict, int]:
    n = int.from_bytes(msg[:4], "little")
    return json.loads(msg[4:4 + n]), (4 + n + 3) & ~3


def pack(header: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """One message: the header and the arrays (integers as int32, float16 kept, the rest
    float32)."""
    meta, parts, off = {}, [], 0
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        a = np.ascontiguousarray(arr, dtype=np.float16 if arr.dtype == np.float16 else
                                 np.int32 if arr.dtype.kind in "iub" else np.float32)
        meta[name] = [_CODES[a.dtype.type], off, int(a.size)]
        raw = a.tobytes() + b"\0" * ((-a.nbytes) % 4)
        parts.append(raw)
        off += len(raw)
    return _framed({**header, "arrays": meta}, parts)


def unpack(msg: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """The inverse of pack: (header without "arrays", {name: array}); what the page decodes."""
    header, start = _split(msg)
    return header, {name: np.frombuffer(msg, dtype=_DTYPES[dt], count=count, offset=start + off)
                    for name, (dt, off, count) in header.pop("arrays", {}).items()}


def pack_parts(header: dict, parts: dict[str, bytes]) -> bytes:
    """A feed frame: the header (with each part's offset and length) and the parts, each
    padded to 4 bytes (the page decodes them in place)."""
    index, off, blobs = {}, 0, []
    for name, blob in parts.items():
        index[name] = [off, len(blob)]
        blobs.append(blob + b"\0" * ((-len(blob)) % 4))
        off += len(blobs[-1])
    return _framed({**header, "parts": index}, blobs)


def unpack_parts(data: bytes) -> tuple[dict, dict[str, bytes]]:
    """The inverse of pack_parts (tests and tools)."""
    header, start = _split(data)
    return header, {name: data[start + o:start + o + ln] for name, (o, ln) in header.pop("parts").items()}
