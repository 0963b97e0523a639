"""alice's flood (grader/traffic.py), against a small server of the test's own.

Real sockets on 127.0.0.1: the test's server answers each MSG with 'SENT <recipient>'.
"""

import socket
import threading

import pytest

from grader.failure import Conversation
from grader.framing import frame, take_payloads
from grader.traffic import Flood
from grader.wire import Peer


def answer_each_msg(listener: socket.socket) -> None:
    """Accept one client and answer each of its MSGs with 'SENT <recipient>' until it leaves."""
    conn, _ = listener.accept()
    with conn:
        buffer = bytearray()
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            try:
                for payload in take_payloads(buffer):
                    conn.sendall(frame(b"SENT " + payload.split(b" ")[1]))
            except OSError:   # alice left while answered (the test ends her flood early)
                return


@pytest.fixture
def alice():
    """alice's Peer, connected to the test's server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        server = threading.Thread(target=answer_each_msg, args=(listener,), daemon=True)
        server.start()
        sock = socket.create_connection(listener.getsockname())
        yield Peer(sock, "alice", Conversation())
        sock.close()
        server.join(5)


def test_a_flood_gets_a_reply_to_each_message(alice):
    flood = Flood(alice, "bob", 300)
    flood.start()
    flood.wait()
    assert (flood.replies, flood.sent_replies, flood.ending) == (300, 300, "")


def test_an_error_in_the_floods_thread_is_the_graders_not_a_short_count(alice, monkeypatch):
    """Anything but the connection's end going wrong in the flood's thread is raised in
    the check's thread (conftest.py tells it as the grader's own error), not left as a
    flood that stopped short for the check to judge the server by."""
    def broken(count):
        raise ValueError("the grader's own mistake")
    monkeypatch.setattr(alice, "count_sent", broken)   # in the flood's every send
    flood = Flood(alice, "bob", 300)
    flood.start()
    with pytest.raises(ValueError, match="the grader's own mistake"):
        flood.wait()
    with pytest.raises(ValueError, match="the grader's own mistake"):
        flood.stop()   # check 10 stops it in a `finally`: the error is raised there too
