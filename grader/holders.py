"""Who holds a socket: which process has it open (Linux: /proc, and the kernel's word).

serverside.whose_listener (who listens on the port given to a server) and
clientside.whose_connection (who holds the other end of a connection the scripted
server accepted) both answer OURS, THEIRS, NOBODY or UNKNOWN from what is here: the
sockets of one state on a port, as /proc names them ('socket:[1234]'), asked of
the kernel's socket diagnostics first (sockdiag.py), and whether a program or a
process it started holds one of them (/proc/PID/fd).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from grader import sockdiag

# Who holds a socket: the program under test (or a process it started), another
# program, nobody (closed already), or unknown where the system can't tell.
OURS, THEIRS, NOBODY, UNKNOWN = "ours", "theirs", "nobody", "unknown"


def held_by(program, sockets: set[str]) -> bool:
    """Has the program (programs.Program), or a process it started, one of these sockets
    open? (Its own process first, then those the watchdog knows, then its whole session.)"""
    pid = program.proc.pid
    return holds(pid, sockets) or any(holds(other, sockets) for other in list(program.pids)) \
        or any(holds(member, sockets) for member in session_members(pid))


def holds(pid: int, sockets: set[str]) -> bool:
    """Has process `pid` one of these sockets open?"""
    try:
        descriptors = list((Path("/proc") / str(pid) / "fd").iterdir())
    except OSError:
        return False                 # it ended, or is not ours to look at
    for descriptor in descriptors:
        try:
            if os.readlink(descriptor) in sockets:
                return True
        except OSError:
            continue                 # closed while we looked: a program starting up opens
                                     # and closes files (one such look failed all of it)
    return False


def listening_sockets(table: str, port: int) -> set[str] | None:
    """Linux: the sockets of one /proc table listening on `port`, as /proc names them
    ('socket:[1234]'); None without /proc. Asked of the kernel's socket diagnostics
    first (sockdiag.py: the listening sockets alone, not every connection's line)."""
    return _sockets(table, sockdiag.TCP_LISTEN, port, None)


def established_sockets(table: str, port_from: int, port_to: int) -> set[str] | None:
    """Linux: the sockets of one /proc table with an established connection from local
    port `port_from` to port `port_to`, named the same way; None without /proc."""
    return _sockets(table, sockdiag.TCP_ESTABLISHED, port_from, port_to)


def _sockets(table: str, state: int, port: int, peer_port: int | None) -> set[str] | None:
    found = sockdiag.sockets(socket.AF_INET6 if table.endswith("6") else socket.AF_INET,
                             state, port, peer_port)
    if found is not None:
        return found
    try:
        lines = Path(table).read_text().splitlines()[1:]
    except OSError:
        return None
    # A line: "sl local_address:port rem_address:port st ... inode", in hexadecimal.
    return {"socket:[%s]" % fields[9] for fields in map(str.split, lines)
            if int(fields[3], 16) == state and int(fields[1].rsplit(":", 1)[1], 16) == port
            and (peer_port is None or int(fields[2].rsplit(":", 1)[1], 16) == peer_port)}


def session_members(session: int) -> list[int]:
    """Every other process in the program's session (the ones it started)."""
    members = []
    for entry in Path("/proc").iterdir():
        try:
            # /proc/PID/stat: "pid (name) state ppid pgrp session ..."
            if entry.name.isdigit() and int(entry.name) != session and \
                    int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3]) == session:
                members.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return members
