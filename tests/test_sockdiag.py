"""grader/sockdiag.py: the kernel's socket diagnostics name the same listening sockets
as /proc/net/tcp does (Linux), and elsewhere give way to the other means."""

import os
import socket

import pytest

from gradekit import LINUX
from grader import holders, sockdiag


def read_proc_table(table, port):
    """The /proc reading holders.listening_sockets falls back on, on its own."""
    lines = open(table).read().splitlines()[1:]
    return {"socket:[%s]" % f[9] for f in map(str.split, lines)
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port}


@pytest.mark.skipif(not LINUX, reason="socket diagnostics are Linux's")
@pytest.mark.parametrize("family, host, table", [
    (socket.AF_INET, "127.0.0.1", "/proc/net/tcp"),
    (socket.AF_INET6, "::1", "/proc/net/tcp6")])
def test_the_same_listening_sockets_as_proc(family, host, table):
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6")
    with socket.socket(family) as listener, socket.socket(family) as connected:
        listener.bind((host, 0))
        listener.listen()
        port = listener.getsockname()[1]
        connected.connect((host, port))      # a connection on the port is not a listener
        accepted, _ = listener.accept()
        with accepted:
            found = sockdiag.listening(family, port)
            assert found == {"socket:[%d]" % os.fstat(listener.fileno()).st_ino}
            assert found == read_proc_table(table, port)
            assert holders.listening_sockets(table, port) == found
    assert sockdiag.listening(family, port) == set() == read_proc_table(table, port)


@pytest.mark.skipif(not LINUX, reason="socket diagnostics are Linux's")
def test_every_listening_port_of_the_machine_agrees():
    for family, table in ((socket.AF_INET, "/proc/net/tcp"), (socket.AF_INET6, "/proc/net/tcp6")):
        lines = open(table).read().splitlines()[1:]
        ports = {int(f[1].rsplit(":", 1)[1], 16) for f in map(str.split, lines) if f[3] == "0A"}
        for port in ports:
            assert sockdiag.listening(family, port) == read_proc_table(table, port), (table, port)


def test_without_netlink_it_gives_way(monkeypatch):
    """No AF_NETLINK (Windows, macOS): None, and listening_sockets reads /proc as before."""
    monkeypatch.delattr(socket, "AF_NETLINK", raising=False)
    assert sockdiag.listening(socket.AF_INET, 80) is None
    if not LINUX:
        assert holders.listening_sockets("/no/such/table", 80) is None


def test_a_refused_request_gives_way(monkeypatch):
    """The kernel's refusal (an error message, or none at all) is None, never an exception."""
    class Refusing:
        def __init__(self, *args):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

        def settimeout(self, seconds):
            pass

        def send(self, data):
            raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(socket, "AF_NETLINK", 16, raising=False)
    monkeypatch.setattr(socket, "socket", Refusing)
    assert sockdiag.listening(socket.AF_INET, 80) is None
    error = sockdiag.HEADER.pack(36, sockdiag.NLMSG_ERROR, 0, 1, 0) + bytes(20)
    Refusing.send = lambda self, data: None
    Refusing.recv = lambda self, size: error
    assert sockdiag.listening(socket.AF_INET, 80) is None


@pytest.mark.skipif(not LINUX, reason="/proc/PID/fd is Linux's")
def test_a_descriptor_closed_while_looked_at_hides_no_other(monkeypatch):
    """holders.holds: a program starting up closes files while the grader reads its
    descriptors; one that vanished must not make its listening socket 'another
    program's' (once, the whole look failed, and a server never listened in time)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        name = "socket:[%d]" % os.fstat(listener.fileno()).st_ino
        real, vanished = os.readlink, []

        def closed_meanwhile(path):
            link = real(path)
            if link != name and not vanished:
                vanished.append(path)
                raise FileNotFoundError(2, "No such file or directory", str(path))
            return link

        monkeypatch.setattr(holders.os, "readlink", closed_meanwhile)
        assert holders.holds(os.getpid(), {name})
        assert vanished
