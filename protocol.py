"""The chat kit's wire protocol: constants and framing, shared by every stage.

Why framing?  TCP delivers a stream of bytes, not messages.  If a client
sends "hello" and then "world", the server may receive "hel", then
"loworld", or both words in one piece.  So every message carries its own
length in front of it:

    0005hello      header "0005" (the payload is 5 bytes), payload "hello"
    0000           an empty payload
    0006héllo      "é" is two bytes in UTF-8, so "héllo" is 6 bytes long

The header is always exactly 4 ASCII digits, and a payload is at most 1024
bytes.  A receiver reads 4 bytes, learns the length, reads that many more
bytes, and has one whole message, however the stream was cut up.

This module only turns payloads into bytes and bytes back into payloads.  It
knows nothing about select or about which client is which ("sans-IO"), so
the same code serves the one-thread server, the client, and the tests.
"""

# Where things are.
SERVER_IP = "127.0.0.1"   # where the client connects: this same computer
LISTEN_IP = "0.0.0.0"     # where the server listens: every network interface
SERVER_PORT = 7777

# Sizes and limits.
MAX_MSG_LENGTH = 1024         # the largest payload, in bytes
LENGTH_FIELD_SIZE = 4         # the header: 4 ASCII digits, "0000" to "1024"
MAX_NAME_LENGTH = 16          # the longest name, in characters
MAX_BACKLOG = 1024 * 1024     # unsent bytes the server keeps for one client

# Commands a client sends (stages 2 to 4).
CMD_NAME = "NAME"
CMD_GET_NAMES = "GET_NAMES"
CMD_MSG = "MSG"
CMD_EXIT = "EXIT"

# What the server sends back.
REPLY_HELLO = "HELLO"
REPLY_NAMES = "NAMES"
REPLY_SENT = "SENT"
PUSH_FROM = "FROM"            # a "push": sent to a client that did not ask
REPLY_BYE = "BYE"
REPLY_ERROR = "ERROR"

# The only bytes a header may hold.  (Not str.isdigit(): it also accepts
# digits such as "１" or "٣", and int() would accept " 123" or "+001".)
ASCII_DIGITS = b"0123456789"


class ProtocolError(ValueError):
    """Bytes that break the framing rules, or a payload too long to send."""


def frame(payload):
    """Return the bytes to send for one message: header + payload.

    `payload` is bytes, or a str (which is sent as UTF-8).  The header
    counts bytes, not characters: frame("héllo") == b"0006h\\xc3\\xa9llo".
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    if len(payload) > MAX_MSG_LENGTH:
        raise ProtocolError("a payload is at most %d bytes; this one is %d"
                            % (MAX_MSG_LENGTH, len(payload)))
    header = str(len(payload)).zfill(LENGTH_FIELD_SIZE).encode("ascii")
    return header + payload


def refusal(reason):
    """The reply that refuses a request: "ERROR <reason>".

    Every refusal of the protocol starts with exactly the word ERROR (a grader, or
    another program, reads only that word; the reason is for people), so build
    them all here rather than typing the word again each time.
    """
    return "%s %s" % (REPLY_ERROR, reason)


def _payload_length(header):
    """Return the payload length a 4-byte header announces, or raise ProtocolError."""
    if len(header) != LENGTH_FIELD_SIZE or any(b not in ASCII_DIGITS for b in header):
        raise ProtocolError("bad header %r: expected %d ASCII digits"
                            % (bytes(header), LENGTH_FIELD_SIZE))
    length = int(header)
    if length > MAX_MSG_LENGTH:
        raise ProtocolError("bad header %r: a payload is at most %d bytes"
                            % (bytes(header), MAX_MSG_LENGTH))
    return length


class Decoder:
    """Rebuilds whole payloads from the pieces one connection delivers.

    Give it every chunk recv() returns; it keeps an unfinished message until
    the rest arrives.  Use one Decoder per connection.

    A bad header does not raise: the messages that came before it are still
    whole and good, so feed() returns them, and `error` says what went wrong.
    Handle those payloads as usual, then check `error`.
    """

    def __init__(self):
        self.buffer = bytearray()   # received bytes not yet part of a whole message
        self.error = None           # a ProtocolError once a bad header has arrived

    def feed(self, data):
        """Add received bytes; return the list of payloads (bytes) now complete.

        The list may be empty (only part of a message so far) or hold several
        payloads (several messages arrived together).  If a bad header arrives,
        the list holds the payloads before it, and self.error is set: from there
        on we cannot know where messages start, so every later call returns an
        empty list, and the connection should be closed.
        """
        payloads = []
        if self.error is not None:
            return payloads   # the stream is broken: nothing after it can be trusted
        self.buffer += data
        while len(self.buffer) >= LENGTH_FIELD_SIZE:
            try:
                length = _payload_length(self.buffer[:LENGTH_FIELD_SIZE])
            except ProtocolError as error:
                self.error = error
                self.buffer.clear()
                break
            end = LENGTH_FIELD_SIZE + length
            if len(self.buffer) < end:
                break   # the rest of this message has not arrived yet
            payloads.append(bytes(self.buffer[LENGTH_FIELD_SIZE:end]))
            del self.buffer[:end]
        return payloads
