"""Linux: which sockets listen on a TCP port, or hold a connection, asked of the kernel.

serverside.whose_listener() must find who listens on the port it gave a server.
/proc/net/tcp lists every TCP socket of the machine, connections included, and the
kernel writes that text afresh at each read: after a grading (hundreds of connections,
each in TIME_WAIT for a minute), or on a machine grading a class, that is thousands of
lines, ~15 ms of kernel time a read, several times per server started. The socket diagnostics
interface (netlink, NETLINK_SOCK_DIAG, what `ss` uses) can be asked for the listening
sockets alone: a few dozen, whatever else the machine does.

`listening(family, port)` returns the same as reading the /proc table: the listening
sockets' names as /proc/PID/fd shows them ('socket:[1234]'); None when the system does
not answer (not Linux, an old kernel, netlink refused): then read /proc.

`connected(family, port_from, port_to)` names the same way the established connections
from one port to another: clientside.py asks who holds the other end of a connection
its listener accepted (the student's client, or a program of another grading).

Asking for connections (any state but LISTEN) makes the kernel walk its whole table of
connections: 2 ms a question on a machine with 262,144 slots in it. `connection(port,
peer_port)` asks for one connection on 127.0.0.1 by its two ports instead, which the
kernel looks up in its hash table (0.05 ms): what a server shared between checks
(serverside.py) is asked many times.

`unread(port, peer_port)` asks the same way for both ends of a connection, with their
tcp_info: how many bytes written at one end the program at the other has not read
yet. wire.Peer.wait_until_read sends the next piece of a message once it is 0.
"""

from __future__ import annotations

import errno
import socket
import struct

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_ESTABLISHED, TCP_CLOSE_WAIT, TCP_LISTEN = 1, 8, 10
HEADER = struct.Struct("=IHHII")          # nlmsghdr: length, type, flags, sequence, port id
REQUEST = struct.Struct("=BBBBI48x")      # inet_diag_req_v2: family, protocol, ext, pad,
                                          # states, and a socket id left empty (a dump)
PORT = struct.Struct("!H")                # inet_diag_msg: the socket id's own port at
                                          # offset 4, the other end's at offset 6
INODE = struct.Struct("=I")               # ... and the inode, at offset 68
TIMEOUT = 1.0                             # seconds; the kernel answers at once


def listening(family: int, port: int) -> set[str] | None:
    """The sockets of `family` (AF_INET or AF_INET6) listening on TCP `port`, as
    /proc names them; None if the kernel can't be asked."""
    return sockets(family, TCP_LISTEN, port, None)


def connected(family: int, port_from: int, port_to: int) -> set[str] | None:
    """The sockets of `family` with an established TCP connection from local port
    `port_from` to port `port_to`, as /proc names them; None if the kernel can't be asked."""
    return sockets(family, TCP_ESTABLISHED, port_from, port_to)


def sockets(family: int, state: int | set[int], port: int,
            peer_port: int | None) -> set[str] | None:
    """The TCP sockets of `family` in `state` (or any of a set of states) on local
    `port` (and to `peer_port`, if given), as /proc names them; None if the kernel
    can't be asked."""
    if not hasattr(socket, "AF_NETLINK"):
        return None
    states = sum(1 << one for one in ({state} if isinstance(state, int) else state))
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as link:
            link.settimeout(TIMEOUT)
            request = REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, states)
            link.send(HEADER.pack(HEADER.size + len(request), SOCK_DIAG_BY_FAMILY,
                                  NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + request)
            return _read_dump(link, port, peer_port)
    except (OSError, struct.error, ValueError):
        return None


def _read_dump(link: socket.socket, port: int, peer_port: int | None) -> set[str] | None:
    found = set()
    while True:
        data = link.recv(65536)
        if not data:
            return None
        at = 0
        while at + HEADER.size <= len(data):
            length, kind = HEADER.unpack_from(data, at)[:2]
            if kind == NLMSG_DONE:
                return found
            if kind == NLMSG_ERROR or length < HEADER.size:
                return None
            body = at + HEADER.size
            if PORT.unpack_from(data, body + 4)[0] == port and (
                    peer_port is None or PORT.unpack_from(data, body + 6)[0] == peer_port):
                found.add("socket:[%d]" % INODE.unpack_from(data, body + 68)[0])
            at += (length + 3) & ~3           # messages are aligned to 4 bytes


# inet_diag_req_v2 for one socket: family, protocol, ext, pad, states (all), then the
# socket id: both ports, both addresses (IPv4 in the first 4 of 16 bytes), interface,
# and the cookie "any" (all bits set).
ONE = struct.Struct("=BBBBI")
LOOPBACK = socket.inet_aton("127.0.0.1") + bytes(12)
NO_COOKIE = struct.pack("=III", 0, 0xFFFFFFFF, 0xFFFFFFFF)
ERROR_CODE = struct.Struct("=i")              # nlmsgerr: the error number, negative
STATE = struct.Struct("=B")                   # inet_diag_msg: the state, at offset 1


class Unanswered(Exception):
    """The kernel can't be asked (not Linux, netlink refused, an odd answer)."""


def connection(port: int, peer_port: int) -> tuple[int, int] | None:
    """The TCP connection on 127.0.0.1 from local `port` to `peer_port`: (its state,
    its inode: 0 while no program holds it, e.g. not yet accepted), or None if there is
    none (the kernel's lookup then falls back to a socket listening on `port`: that
    is no connection). Unanswered if the kernel can't be asked."""
    found = _one(port, peer_port, 0)
    return None if found is None else (STATE.unpack_from(found, 1)[0],
                                       INODE.unpack_from(found, 68)[0])


# tcp_info (linux/tcp.h, Linux 4.19 and later), asked for with INET_DIAG_INFO: data
# bytes received, bytes written but not yet sent, data bytes sent (retransmissions
# included) and retransmitted, each at its offset in the struct.
INET_DIAG_INFO = 2
RTATTR = struct.Struct("=HH")                 # an attribute after the message: length, type
RECEIVE_QUEUE = struct.Struct("=I")           # inet_diag_msg: the receive queue, at 56
TCP_INFO_FIELDS = {"received": (128, "=Q"), "not_sent": (144, "=I"),
                   "sent": (200, "=Q"), "retransmitted": (208, "=Q")}
TCP_INFO_SIZE = 216


def unread(port: int, peer_port: int) -> int | None:
    """How many of the bytes written on 127.0.0.1's connection from `port` to
    `peer_port` the program at the other end has not read yet: not sent, on their
    way, or waiting in its socket. None if there is no such connection, or the kernel
    is too old to tell. Unanswered if the kernel can't be asked.

    Written: the data bytes sent once (less those sent again) and those not sent yet.
    Read: the bytes the other end received, less its receive queue (arrived, not read).
    (The kernel's count of bytes acknowledged would not do: it counts the connection's
    opening on one side and not on the other.)"""
    mine, theirs = _transfer(port, peer_port), _transfer(peer_port, port)
    if mine is None or theirs is None:
        return None
    written = mine["sent"] - mine["retransmitted"] + mine["not_sent"]
    read = theirs["received"] - theirs["receive_queue"]
    return max(written - read, 0)


def _transfer(port: int, peer_port: int) -> dict | None:
    found = _one(port, peer_port, 1 << (INET_DIAG_INFO - 1))
    if found is None:
        return None
    at = 72                                   # the attributes follow the 72-byte message
    while at + RTATTR.size <= len(found):
        length, kind = RTATTR.unpack_from(found, at)
        if length < RTATTR.size:
            break
        if kind == INET_DIAG_INFO and length >= RTATTR.size + TCP_INFO_SIZE:
            info = at + RTATTR.size
            figures = {name: struct.unpack_from(form, found, info + offset)[0]
                       for name, (offset, form) in TCP_INFO_FIELDS.items()}
            figures["receive_queue"] = RECEIVE_QUEUE.unpack_from(found, 56)[0]
            return figures
        at += (length + 3) & ~3
    return None


def _one(port: int, peer_port: int, ext: int) -> bytes | None:
    """The kernel's inet_diag_msg (and the attributes `ext` asked for) of the TCP
    connection on 127.0.0.1 from `port` to `peer_port`; None if there is none."""
    if not hasattr(socket, "AF_NETLINK"):
        raise Unanswered("no netlink")
    request = ONE.pack(socket.AF_INET, socket.IPPROTO_TCP, ext, 0, 0xFFFFFFFF) + \
        struct.pack("!HH", port, peer_port) + LOOPBACK + LOOPBACK + NO_COOKIE
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as link:
            link.settimeout(TIMEOUT)
            link.send(HEADER.pack(HEADER.size + len(request), SOCK_DIAG_BY_FAMILY,
                                  NLM_F_REQUEST, 1, 0) + request)
            data = link.recv(65536)
            length, kind = HEADER.unpack_from(data, 0)[:2]
            body = HEADER.size
            if kind == NLMSG_ERROR:
                if -ERROR_CODE.unpack_from(data, body)[0] == errno.ENOENT:
                    return None
                raise Unanswered("error %d" % ERROR_CODE.unpack_from(data, body)[0])
            if kind != SOCK_DIAG_BY_FAMILY:
                raise Unanswered("message type %d" % kind)
            if STATE.unpack_from(data, body + 1)[0] == TCP_LISTEN:
                return None   # no such connection: the lookup found the listener
            return data[body:length]
    except (OSError, struct.error) as error:
        raise Unanswered(str(error)) from None
