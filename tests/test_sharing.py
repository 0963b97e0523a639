"""One server for several checks (grader/serverside.py § one server for several checks).

A check that passed leaves its server to the next check only when the server is shown
to be as a fresh one would be; the next check sees it as if it had just started. Here
the real ServerUnderTest runs real servers (the reference solution, and planted faults
that a careless sharing would carry into the next check), in this process, as the
grader's fixtures do. That every planted fault still fails exactly the checks it
failed when each check had a server of its own is tests/verdicts.json's business.
"""

from __future__ import annotations

import socket
import textwrap

import pytest

from gradekit import IMPLS, KIT, LINUX
from grader import holders, limits, programs, serverside, sockdiag
from grader.failure import Conversation

pytestmark = pytest.mark.skipif(not LINUX, reason="a server is shared only where the kernel "
                                                 "says which connections it holds (Linux)")


@pytest.fixture
def sandbox():
    box = programs.Sandbox(limits.Limits())
    box.keeps_server = True   # as for a check whose next check may share its server
    yield box
    box.discard_spares()
    box.stop_everything()


def server_for_a_check(stage_dir, sandbox) -> serverside.ServerUnderTest:
    return serverside.ServerUnderTest(stage_dir, Conversation(), sandbox)


def name_alice(server):
    alice = server.connect("alice")
    alice.send("NAME alice")
    alice.expect("HELLO alice", hint="")
    return alice


def test_a_clean_server_goes_to_the_next_check_which_sees_it_start(sandbox):
    """alice takes a name and leaves; the check passed: the next check gets the same
    process, its conversation starts with '(started …)' as a fresh one's does, and
    alice's name is free."""
    stage = KIT / "solutions" / "2_naming"
    first = server_for_a_check(stage, sandbox)
    name_alice(first)
    first.finish(passed=True)
    assert first.program.exit_status() is None, "a clean server is not stopped"

    second = server_for_a_check(stage, sandbox)
    second.start()
    assert second.program is first.program and second.port == first.port
    assert second.conv.lines == ["(started solutions/2_naming/chat_server.py --host "
                                 "127.0.0.1 --port %d)" % second.port]
    bob = second.connect("bob")
    bob.send("GET_NAMES")
    bob.expect("NAMES", hint="")
    name_alice(second)   # the name is free in the next check


def test_a_failed_check_leaves_no_server(sandbox):
    stage = KIT / "solutions" / "2_naming"
    first = server_for_a_check(stage, sandbox)
    name_alice(first)
    first.finish(passed=False)
    assert first.program.exit_status() is not None
    assert sandbox.take_shared(first.script) is None


@pytest.mark.parametrize("fault, stage, why", [
    ("name_kept_after_close", "4_exit", "the probe's GET_NAMES would list alice"),
    ("crash_unnamed_leaves", "2_naming", "it dies when the probe, unnamed, leaves"),
    ("closed_left_in_select", "1_echo", "it keeps selecting on a closed socket"),
])
def test_a_server_not_as_fresh_is_stopped_not_shared(sandbox, monkeypatch, fault, stage, why):
    """A check passed, but the server is not as a fresh one would be: it is stopped,
    and the next check gets a fresh one."""
    monkeypatch.setenv("CHATKIT_FAULT", fault)
    first = server_for_a_check(IMPLS / "faulty" / stage, sandbox)
    if stage == "1_echo":
        first.connect("alice")
    else:
        name_alice(first)
    first.finish(passed=True)
    assert sandbox.take_shared(first.script) is None, why
    assert first.program.exit_status() is not None, "not shared: stopped"


# An echo server that, once a client that talked has left, closes its socket, and
# only then, a moment later, dies (as one whose crash comes after the close): every
# connection is closed when the grader looks, but the server serves no other client.
DIES_AFTER_A_CLIENT_LEAVES = textwrap.dedent("""\
    import argparse, select, socket, sys, time
    parser = argparse.ArgumentParser()
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    arguments = parser.parse_args()
    listener = socket.create_server((arguments.host, arguments.port))
    clients, talked = [], set()
    while True:
        for ready in select.select([listener] + clients, [], [])[0]:
            if ready is listener:
                clients.append(listener.accept()[0])
                continue
            data = ready.recv(4096)
            if data:
                ready.sendall(data)
                talked.add(ready)
                continue
            clients.remove(ready)
            ready.close()
            if ready in talked:
                time.sleep(0.3)
                sys.exit(1)
    """)


def test_a_server_that_dies_after_a_client_left_is_not_shared(sandbox, tmp_path):
    """Every connection closed, the probe answered (its leaving kills the server, a
    moment later): the one more client is never accepted, so it is not shared."""
    stage = tmp_path / "1_echo"
    stage.mkdir()
    (stage / "chat_server.py").write_text(DIES_AFTER_A_CLIENT_LEAVES)
    first = server_for_a_check(stage, sandbox)
    first.start()
    first.finish(passed=True)
    assert sandbox.take_shared(first.script) is None
    assert first.program.exit_status() is not None


def test_a_server_keeping_a_connection_open_is_not_shared(sandbox):
    """A connection the check opened is still open at its end (the server has not
    closed its side): the server is not shown clean."""
    stage = KIT / "solutions" / "1_echo"
    first = server_for_a_check(stage, sandbox)
    first.start()
    stray = socket.create_connection((first.host, first.port))   # not through connect()
    try:
        first.finish(passed=True)
        assert sandbox.take_shared(first.script) is None
    finally:
        stray.close()


def test_the_next_check_is_shown_only_its_own_output(sandbox):
    """A server printing a line per message: the next check's failure would show what
    it printed when it started, then in that check, never an earlier check's lines."""
    stage = IMPLS / "chatty" / "1_echo"
    first = server_for_a_check(stage, sandbox)
    one = first.connect("one")
    one.send("from-the-first-check")
    one.expect("from-the-first-check", hint="")
    started_with = first.program.stdout()[:first.program.start_up_output[0]]
    assert b"listening" in started_with
    first.finish(passed=True)

    second = server_for_a_check(stage, sandbox)
    two = second.connect("two")
    two.send("from-the-second-check")
    two.expect("from-the-second-check", hint="")
    assert second.program is first.program
    for shown in (second.program.stdout(), second.program.stderr(),
                  second.program.out.tail().encode(), second.program.err.tail().encode()):
        assert b"from-the-first-check" not in shown
        assert b"from-the-second-check" in shown
    assert second.program.stdout().startswith(started_with)
    assert b"from-the-first-check" in second.program.out.since(0)[1]   # only hidden


def test_the_kernel_names_one_connection_by_its_ports():
    """sockdiag.connection(): the state and holder of one connection, looked up by its
    ports; None for no connection (the kernel's lookup then finds the listener)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        client_port = client.getsockname()[1]
        assert sockdiag.connection(port, client_port) == (sockdiag.TCP_ESTABLISHED, 0)
        accepted, _ = listener.accept()
        state, inode = sockdiag.connection(port, client_port)
        assert state == sockdiag.TCP_ESTABLISHED
        assert {"socket:[%d]" % inode} == holders.established_sockets(
            "/proc/net/tcp", port, client_port)   # the one the listing names
        client.close()
        assert sockdiag.connection(port, client_port)[0] == sockdiag.TCP_CLOSE_WAIT
        accepted.close()
        assert sockdiag.connection(port, client_port) is None
        assert sockdiag.connection(port, 1) is None
