"""The wire format, as the grader and its load tool speak it (standard library only).

A message is a header, the payload's length in bytes as exactly 4 ASCII digits,
then the payload (0 to 1024 bytes). Anything else in a header is a framing
error: never trust int() alone, which also reads '+012', ' 12 ' and '1_23'.
Written independently of the kit's protocol.py, on purpose: the grader must
catch a bug there, not agree with it.
"""

from __future__ import annotations

HEADER_SIZE = 4
MAX_PAYLOAD = 1024
DIGITS = b"0123456789"


class FramingError(ValueError):
    """Bytes that are not a valid header (what they were is the argument)."""


def frame(payload: bytes | str) -> bytes:
    """Header (4 ASCII digits: the length in bytes) followed by the payload."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return b"%04d" % len(payload) + payload


def payload_length(header: bytes) -> int:
    """The length a 4-byte header announces; FramingError if it is not a valid one."""
    if len(header) != HEADER_SIZE or any(byte not in DIGITS for byte in header):
        raise FramingError(bytes(header))
    length = int(header)
    if length > MAX_PAYLOAD:
        raise FramingError(bytes(header))
    return length


def take_payloads(buffer: bytearray) -> list[bytes]:
    """Remove every complete message from `buffer`; return their payloads (in order).
    FramingError at a bad header (the whole messages before it are left taken)."""
    payloads = []
    start, size = 0, len(buffer)
    try:
        while size - start >= HEADER_SIZE:
            end = start + HEADER_SIZE + payload_length(buffer[start:start + HEADER_SIZE])
            if end > size:
                break
            payloads.append(bytes(buffer[start + HEADER_SIZE:end]))
            start = end
    except FramingError:
        del buffer[:start]
        raise FramingError(bytes(buffer[:40])) from None
    del buffer[:start]
    return payloads
