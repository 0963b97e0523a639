"""The grader's waits that end on a real event instead of a fixed pause (issue 26).

* Peer.wait_until_read: a message sent in pieces (a byte at a time, in three pieces, a
  character cut in two) sends each piece once the other end has read the one before,
  as the kernel tells (sockdiag.unread); so each piece is a read of its own.
* Output.wait_past: expect_printed wakes when the client prints, not on a timer.
* processes.reading_input: check N.24's message comes once the client waits for input.

Where the system can't tell (not Linux), each is the pause it was before.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import types

import pytest

from gradekit import LINUX
from grader import processes, sockdiag, wire
from grader.output import Output
from grader.system import linux
from grader.clientside import ClientLink
from grader.framing import frame
from grader.wire import Conversation, Peer

linux_only = pytest.mark.skipif(not LINUX, reason="the kernel tells these on Linux")


@pytest.fixture
def connection():
    """(the grader's end, the program's end) of a connection on 127.0.0.1."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        ours = socket.create_connection(listener.getsockname())
        theirs, _ = listener.accept()
    yield ours, theirs
    ours.close()
    theirs.close()


def reading(sock: socket.socket, total: int) -> types.SimpleNamespace:
    """Start reading `total` bytes from `sock` in a thread, as a program's select loop
    does (recv of up to 64 KiB each time): .sizes fills with each recv()'s size,
    .join() waits for the end."""
    sizes: list[int] = []

    def read() -> None:
        got = 0
        sock.settimeout(10)
        while got < total:
            data = sock.recv(65536)
            if not data:
                return
            sizes.append(len(data))
            got += len(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return types.SimpleNamespace(sizes=sizes, join=lambda: reader.join(10))


@pytest.fixture
def sleeps(monkeypatch):
    """Every time.sleep() of the test's own thread (the grader's wire runs in it),
    recorded and still slept. time.sleep is the process's: a thread another test left
    running sleeps through it too, and is not the grader's pause."""
    slept: list[float] = []
    real = time.sleep
    ours = threading.get_ident()

    def sleep(seconds):
        if threading.get_ident() == ours:
            slept.append(seconds)
        real(seconds)

    monkeypatch.setattr(wire.time, "sleep", sleep)
    return slept


@linux_only
def test_unread_counts_the_bytes_the_other_end_has_not_read(connection):
    ours, theirs = connection
    here, there = ours.getsockname()[1], ours.getpeername()[1]
    assert sockdiag.unread(here, there) == 0
    ours.sendall(b"0005hello")
    assert sockdiag.unread(here, there) == 9
    assert theirs.recv(4) == b"0005"
    assert sockdiag.unread(here, there) == 5
    assert theirs.recv(100) == b"hello"
    assert sockdiag.unread(here, there) == 0
    theirs.sendall(b"xy")                     # each direction is counted on its own
    assert (sockdiag.unread(there, here), sockdiag.unread(here, there)) == (2, 0)
    ours.shutdown(socket.SHUT_WR)             # the end of the stream is not a byte to read
    assert sockdiag.unread(here, there) == 0
    assert sockdiag.unread(here, 1) is None   # no such connection


@pytest.fixture
def long_bounds(monkeypatch):
    """The waits' bounds made 10 s, so that only the event ends them (a crowded machine
    may keep the reading thread from reading within the grader's few milliseconds)."""
    from grader import chat
    for module, name in ((wire, "HEADER_PAUSE"), (wire, "BYTE_PAUSE"), (chat, "SPLIT_PAUSE")):
        monkeypatch.setattr(module, name, 10.0)
    return 10.0


@linux_only
def test_a_message_sent_bytewise_is_read_a_byte_at_a_time(connection, sleeps, long_bounds):
    """Each byte is sent once the reader has read the one before: nine reads of one
    byte, and the grader never paused for its bound (it asked the kernel)."""
    ours, theirs = connection
    reader = reading(theirs, len(frame("hello")))
    Peer(ours, "alice", Conversation()).send_bytewise("hello")
    reader.join()
    assert reader.sizes == [1] * 9
    assert max(sleeps, default=0.0) <= wire.READ_LOOK


@linux_only
def test_pieces_and_a_cut_character_are_reads_of_their_own(connection, long_bounds):
    from grader.chat import send_split_character
    ours, theirs = connection
    data, split = frame("FROM alice in three pieces"), frame("MSG bob héllo")
    cut = split.index("é".encode("utf-8")) + 1   # inside the é
    reader = reading(theirs, len(data) + len(split))
    link = ClientLink(ours, Conversation())
    link.send_pieces([data[:4], data[4:15], data[15:]], long_bounds)
    link.wait_until_read(long_bounds)   # the two messages are not glued either
    send_split_character(Peer(ours, "alice", Conversation()), "MSG bob héllo")
    reader.join()
    assert reader.sizes == [4, 11, len(data) - 15, cut, len(split) - cut]


@pytest.mark.parametrize("kernel_tells", [True, False])
def test_a_reader_that_does_not_read_is_waited_for_the_pause(connection, monkeypatch,
                                                             kernel_tells):
    """Nobody reads: the wait ends after `most` seconds (not before, not long after),
    whether the kernel tells what is unread or not."""
    if not kernel_tells:
        monkeypatch.setattr(sockdiag, "unread", lambda *ports: None)
    ours, _ = connection
    peer = Peer(ours, "alice", Conversation())
    peer.sock.sendall(b"0005hello")
    started = time.monotonic()
    peer.wait_until_read(0.1)
    assert 0.1 <= time.monotonic() - started < 5


def test_waiting_for_output_wakes_when_bytes_or_the_end_arrive():
    """Output.wait_past returns when the program prints, long before its timeout, and
    at the end of the output."""
    readable, writable = os.pipe()
    output = Output(os.fdopen(readable, "rb"), lambda: None)
    timer = threading.Timer(0.2, os.write, (writable, b"hi\n"))
    started = time.monotonic()
    timer.start()
    output.wait_past(0, 30)
    assert output.total == 3 and time.monotonic() - started < 15
    os.close(writable)
    started = time.monotonic()
    output.wait_past(3, 30)
    assert output.ended and time.monotonic() - started < 15


def start_python(code: str) -> types.SimpleNamespace:
    """A program (as processes.process_tree sees one) running `code`, its input a pipe."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    return types.SimpleNamespace(proc=proc, pids=set())


@linux_only
def test_a_client_waiting_for_input_is_seen_waiting():
    """A thread in input() is seen (before long); a program that only sleeps, never."""
    reader = start_python("import threading, time\n"
                          "threading.Thread(target=input, daemon=True).start()\n"
                          "time.sleep(60)")
    sleeper = start_python("import time; time.sleep(60)")
    try:
        deadline = time.monotonic() + 20
        while not processes.reading_input(reader) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert processes.reading_input(reader) is True
        assert processes.reading_input(sleeper) is False
    finally:
        for program in (reader, sleeper):
            program.proc.kill()
            program.proc.wait()
            program.proc.stdin.close()


def test_where_it_cant_be_seen_the_answer_is_none(monkeypatch):
    monkeypatch.setattr(linux, "READ_SYSCALL", {})
    program = types.SimpleNamespace(proc=types.SimpleNamespace(pid=os.getpid()), pids=set())
    assert processes.reading_input(program) is None
