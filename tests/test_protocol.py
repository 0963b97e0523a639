"""Unit tests of protocol.py: framing and unframing, without any server.

TCP may cut a stream anywhere, so most tests feed the Decoder the same bytes
in different pieces and check that the same payloads come out.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import protocol  # noqa: E402
from protocol import Decoder, ProtocolError, frame  # noqa: E402


def feed_in_pieces(data, size):
    """Feed `data` to a new Decoder `size` bytes at a time; return every payload."""
    decoder = Decoder()
    payloads = []
    for i in range(0, len(data), size):
        payloads += decoder.feed(data[i:i + size])
    return payloads


# --- constants ---------------------------------------------------------------

def test_constants_match_the_readme():
    assert (protocol.SERVER_IP, protocol.LISTEN_IP, protocol.SERVER_PORT) == (
        "127.0.0.1", "0.0.0.0", 7777)
    assert protocol.MAX_MSG_LENGTH == 1024
    assert protocol.LENGTH_FIELD_SIZE == 4
    assert protocol.MAX_NAME_LENGTH == 16
    assert protocol.MAX_BACKLOG == 1024 * 1024
    assert issubclass(ProtocolError, ValueError)
    words = [protocol.CMD_NAME, protocol.CMD_GET_NAMES, protocol.CMD_MSG, protocol.CMD_EXIT,
             protocol.REPLY_HELLO, protocol.REPLY_NAMES, protocol.REPLY_SENT,
             protocol.PUSH_FROM, protocol.REPLY_BYE, protocol.REPLY_ERROR]
    assert words == ["NAME", "GET_NAMES", "MSG", "EXIT", "HELLO", "NAMES", "SENT", "FROM",
                     "BYE", "ERROR"]


# --- frame -------------------------------------------------------------------

@pytest.mark.parametrize("payload, wire", [
    ("hello", b"0005hello"),
    (b"hello", b"0005hello"),
    ("", b"0000"),
    (b"", b"0000"),
    ("héllo", b"0006h\xc3\xa9llo"),           # é is two bytes in UTF-8
    ("ש", b"0002\xd7\xa9"),
])
def test_frame(payload, wire):
    assert frame(payload) == wire


def test_frame_accepts_exactly_1024_bytes():
    assert frame(b"x" * 1024) == b"1024" + b"x" * 1024


@pytest.mark.parametrize("payload", [b"x" * 1025, "x" * 1025, "é" * 513])
def test_frame_refuses_more_than_1024_bytes(payload):
    with pytest.raises(ProtocolError, match="1024"):
        frame(payload)


# --- Decoder: pieces ---------------------------------------------------------

def test_whole_message():
    assert Decoder().feed(b"0005hello") == [b"hello"]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7])
def test_header_and_payload_split_anywhere(size):
    assert feed_in_pieces(b"0005hello", size) == [b"hello"]


def test_partial_message_waits_for_the_rest():
    decoder = Decoder()
    assert decoder.feed(b"00") == []
    assert decoder.feed(b"05hel") == []
    assert decoder.feed(b"lo") == [b"hello"]


def test_coalesced_messages():
    assert Decoder().feed(b"0003one0003two0005three") == [b"one", b"two", b"three"]


def test_coalesced_messages_with_a_partial_tail():
    decoder = Decoder()
    assert decoder.feed(b"0003one0003two00") == [b"one", b"two"]
    assert decoder.feed(b"05three") == [b"three"]


def test_empty_payload():
    assert Decoder().feed(b"0000") == [b""]
    assert Decoder().feed(b"00000000" + b"0002hi") == [b"", b"", b"hi"]


def test_exactly_1024_bytes():
    assert feed_in_pieces(b"1024" + b"y" * 1024, 100) == [b"y" * 1024]


def test_multibyte_utf8_split_across_chunks():
    data = frame("héllo")
    assert data == b"0006h\xc3\xa9llo"
    payloads = feed_in_pieces(data, 1)   # the é's two bytes arrive separately
    assert payloads == ["héllo".encode("utf-8")]
    assert payloads[0].decode("utf-8") == "héllo"


def test_many_messages_one_byte_at_a_time():
    texts = ["a", "", "héllo wörld ש", "x" * 1024, "end"]
    data = b"".join(frame(t) for t in texts)
    assert feed_in_pieces(data, 1) == [t.encode("utf-8") for t in texts]


def test_payload_bytes_are_kept_exactly():
    raw = bytes(range(256))[:200]
    assert Decoder().feed(frame(raw)) == [raw]


# --- Decoder: bad headers ----------------------------------------------------
# A bad header does not raise: feed() returns the whole payloads that came
# before it, sets `error`, and returns nothing more after it.

def test_no_error_while_the_stream_is_good():
    decoder = Decoder()
    assert decoder.feed(b"0002hi00") == [b"hi"]
    assert decoder.error is None


@pytest.mark.parametrize("header", [
    b"abcd", b" 123", b"123 ", b"-001", b"+001", b"1_00", b"0x10", b"12\n4",
    "１２３４".encode("utf-8"),   # fullwidth digits: str.isdigit() would say yes
    "١٢٣٤".encode("utf-8"),       # Arabic-Indic digits
])
def test_header_that_is_not_4_ascii_digits(header):
    decoder = Decoder()
    assert decoder.feed(header + b"xxxxxxxxxxxx") == []
    assert isinstance(decoder.error, ProtocolError)
    assert "4 ASCII digits" in str(decoder.error)


@pytest.mark.parametrize("header", [b"1025", b"9999"])
def test_header_announcing_too_much(header):
    decoder = Decoder()
    assert decoder.feed(header) == []
    assert isinstance(decoder.error, ProtocolError)
    assert "1024" in str(decoder.error)


def test_header_announcing_exactly_1024_is_no_error():
    decoder = Decoder()
    assert decoder.feed(b"1024") == []
    assert decoder.error is None


def test_bad_header_is_found_when_its_last_byte_arrives():
    decoder = Decoder()
    assert decoder.feed(b"10") == []
    assert decoder.feed(b"2") == []
    assert decoder.error is None
    assert decoder.feed(b"5") == []
    assert isinstance(decoder.error, ProtocolError)


def test_messages_before_a_bad_header_in_the_same_chunk_come_out():
    decoder = Decoder()
    assert decoder.feed(b"0002hi0000abcd0002no") == [b"hi", b""]
    assert isinstance(decoder.error, ProtocolError)


@pytest.mark.parametrize("size", [1, 3, 6])
def test_messages_before_a_bad_header_in_pieces_come_out(size):
    decoder = Decoder()
    data = b"0002hi0003one1025" + b"x" * 1025 + b"0002no"
    payloads = []
    for i in range(0, len(data), size):
        payloads += decoder.feed(data[i:i + size])
    assert payloads == [b"hi", b"one"]
    assert "1025" in str(decoder.error)


def test_nothing_comes_out_after_a_bad_header():
    decoder = Decoder()
    assert decoder.feed(b"0002hiabcd") == [b"hi"]
    error = decoder.error
    assert decoder.feed(b"0002ok") == []     # even a well-framed message: the stream is lost
    assert decoder.feed(b"") == []
    assert decoder.error is error            # the first error is kept


def test_bad_header_after_a_good_message():
    decoder = Decoder()
    assert decoder.feed(b"0002hi") == [b"hi"]
    assert decoder.error is None
    assert decoder.feed(b"abcd") == []
    assert isinstance(decoder.error, ProtocolError)
