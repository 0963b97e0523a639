"""Gradings side by side: a connection from another grading's program is never taken for
the student's (Linux, where the kernel says who holds a socket).

A teacher grading a class runs several gradings at once, and so does the kit's own
suite (test_mutants: three). Each picks ports by binding port 0. One grading's server
port, picked and not yet bound, could be handed to another grading's scripted server
(clientside.py), and the first grading's knock (is my server listening yet?) then
reached the second grading's listener before its student's client did: that check
said 'the client closed the connection' of a correct client (CI, twice: 1.22 and
3.21 of a correct client in test_mutants). Here both sides are planted by hand.
"""

from __future__ import annotations

import os
import socket
import textwrap
import time

import pytest

from gradekit import KIT, LINUX
from grader import clientside, holders, limits, programs, serverside, sockdiag
from grader.failure import Conversation
from grader.wire import CLOSED, CheckFailed

pytestmark = pytest.mark.skipif(not LINUX, reason="Linux tells who holds a socket; "
                                                 "elsewhere the grader trusts every connection")

# A client that connects after a moment (so the planted knock comes first), says hello,
# and stays; or connects and closes at once, staying or leaving.
CLIENT = textwrap.dedent("""\
    import argparse, socket, sys, time
    parser = argparse.ArgumentParser()
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    arguments = parser.parse_args()
    time.sleep(0.3)
    sock = socket.create_connection((arguments.host, arguments.port))
    if "{how}" == "hello":
        sock.sendall(b"0005hello")
    else:
        sock.close()
    if "{how}" != "closes-and-exits":
        time.sleep(60)
    """)


@pytest.fixture
def sandbox():
    box = programs.Sandbox(limits.Limits())
    yield box
    box.stop_everything()


def client_folder(tmp_path, how):
    stage = tmp_path / "1_echo"
    stage.mkdir()
    (stage / "chat_client.py").write_text(CLIENT.format(how=how))
    return stage


def start_with_a_knock(stage, sandbox, knock_stays_open):
    """The client's check, its spare client started, and another program's connection
    reaching the grader's listener first. The check's link, and the knocking socket."""
    script = stage / "chat_client.py"
    spare = clientside.spare_client(script, sandbox)
    sandbox.keep_spare(script, spare)
    sandbox.unwanted = {script}   # no spare for a next check
    knock = socket.create_connection(("127.0.0.1", spare.port))
    if not knock_stays_open:
        knock.close()             # as another grading does once it sees whose port it is
    client = clientside.ClientUnderTest(stage, Conversation(), sandbox)
    try:
        return client, client.start(), knock
    except CheckFailed:
        client.stop()
        raise


def test_connected_names_the_same_sockets_as_proc(monkeypatch):
    with socket.socket() as listener, socket.socket() as connected:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        connected.connect(("127.0.0.1", port))
        accepted, _ = listener.accept()
        with accepted:
            here = connected.getsockname()[1]
            wanted = {"socket:[%d]" % os.fstat(connected.fileno()).st_ino}
            assert sockdiag.connected(socket.AF_INET, here, port) == wanted
            assert sockdiag.connected(socket.AF_INET, port, here) != wanted   # the other end
            lines = open("/proc/net/tcp").read().splitlines()[1:]
            from_proc = {"socket:[%s]" % f[9] for f in map(str.split, lines)
                         if f[3] == "01" and int(f[1].rsplit(":", 1)[1], 16) == here
                         and int(f[2].rsplit(":", 1)[1], 16) == port}
            assert from_proc == wanted
            assert holders.established_sockets("/proc/net/tcp", here, port) == wanted
            monkeypatch.delattr(socket, "AF_NETLINK")   # no netlink: read from /proc
            assert sockdiag.connected(socket.AF_INET, here, port) is None
            assert holders.established_sockets("/proc/net/tcp", here, port) == wanted
            assert holders.listening_sockets("/proc/net/tcp", port) == {
                "socket:[%d]" % os.fstat(listener.fileno()).st_ino}


@pytest.mark.parametrize("knock_stays_open", [False, True], ids=["knock-closed", "knock-open"])
def test_a_knock_on_the_graders_listener_is_not_taken_for_the_client(
        tmp_path, sandbox, knock_stays_open):
    client, link, knock = start_with_a_knock(client_folder(tmp_path, "hello"), sandbox,
                                             knock_stays_open)
    try:
        link.expect("hello", hint="the client's own connection")   # CheckFailed if not
        if knock_stays_open:
            knock.settimeout(5)
            assert knock.recv(10) == b"", "the grader kept another program's connection"
    finally:
        knock.close()
        client.stop()


@pytest.mark.parametrize("how", ["closes-and-stays", "closes-and-exits"])
def test_a_client_that_connects_and_closes_is_still_judged(tmp_path, sandbox, how):
    """Its connection looks like a knock whose other end left; with no other coming, it
    is the client's (once it exits, or when the time to connect is up): the check sees
    it closed, rather than 'no connection'."""
    started = time.monotonic()
    client, link, knock = start_with_a_knock(client_folder(tmp_path, how), sandbox, False)
    try:
        took = time.monotonic() - started
        assert took < clientside.CONNECT_TIMEOUT + clientside.STRAY_WAIT + 5   # a guard
        if how == "closes-and-exits":
            assert took < clientside.CONNECT_TIMEOUT / 2   # it exited: no wait for another
        assert link.read_event(timeout=2)[0] == CLOSED
    finally:
        client.stop()


def solution_server(sandbox):
    stage = KIT / "solutions" / "1_echo"
    return serverside.ServerUnderTest(stage, Conversation(), sandbox, spares=False)


def test_a_servers_port_taken_by_another_program_is_never_knocked_on(sandbox, monkeypatch):
    """The port picked for the server is another program's by the time it starts: the
    grader does not connect there (that program would take the knock for its own
    client), and starts the server on another port."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        picks = iter([taken])
        real_free_port = serverside.free_port
        monkeypatch.setattr(serverside, "free_port", lambda: next(picks, None) or real_free_port())
        server = solution_server(sandbox)
        try:
            server.start()
            assert server.port != taken
            assert "(port %d was taken by another program: trying another port)" % taken \
                in server.conv.lines
            other.settimeout(0.5)
            with pytest.raises(socket.timeout):
                other.accept()
            peer = server.connect("alice")
            peer.send("hi")
            peer.expect("hi", hint="the echo")
        finally:
            server.stop()


def test_a_late_client_does_not_reach_the_program_that_took_an_exited_servers_port(sandbox):
    server = solution_server(sandbox)
    server.start()
    server.close_probe()
    server.program.stop()
    try:
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            other.bind(("127.0.0.1", server.port))
            other.listen()
            with pytest.raises(CheckFailed, match="its port %d is another program's now"
                               % server.port):
                server.connect("late")
            other.settimeout(0.5)
            with pytest.raises(socket.timeout):
                other.accept()
    finally:
        server.stop()
