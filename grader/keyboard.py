"""Run your chat client with the grader at its keyboard and screen, in your debugger.

    python -m grader.keyboard 7777 stages/1_echo/chat_client.py

A client check types lines into your client and reads what it prints. When
you start the client yourself (to debug it), its keyboard and screen are
yours, out of the grader's reach. So start it through this launcher, which
runs YOUR chat_client.py, in this very process (so your debugger's
breakpoints in it work), with its standard input, output and error passed to
the grader over a connection to 127.0.0.1:PORT, and its exit status told
when it ends. Your client is given `--host 127.0.0.1 --port PORT`: the grader
plays the server there. Start the grader first:

    python -m pytest grader --check 1.20 --attach 7777

(docs/students.md § Debugging a failing check). Standard library only, as
every program the grader runs.
"""

from __future__ import annotations

import atexit
import builtins
import io
import os
import runpy
import socket
import sys
import threading
import time
import traceback

GREETING = b"CHATKIT-KEYBOARD\n"   # the first bytes: how the grader knows this connection
WAIT_FOR_GRADER = 600.0            # seconds to keep trying to reach the grader
RECORD_SIZE = 9999                 # output is sent in records of at most this many bytes


class Output(io.RawIOBase):
    """One output stream (b"o": standard output, b"e": standard error), sent to the
    grader as records: the kind, a 4-digit length, the bytes."""

    def __init__(self, sock: socket.socket, kind: bytes, lock: threading.Lock) -> None:
        super().__init__()
        self.sock, self.kind, self.lock = sock, kind, lock

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        for start in range(0, len(data), RECORD_SIZE):
            send_record(self.sock, self.lock, self.kind, data[start:start + RECORD_SIZE])
        return len(data)


def send_record(sock, lock, kind: bytes, data: bytes) -> None:
    with lock:   # several threads may print at once: whole records only
        try:
            sock.sendall(kind + b"%04d" % len(data) + data)
        except OSError:
            pass   # the grader has gone (the check ended): nothing to tell any more


def reach_grader(port: int) -> socket.socket:
    """Connect to the grader, trying again until it listens (it may start second)."""
    deadline = time.monotonic() + WAIT_FOR_GRADER
    told = False
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.settimeout(None)
            sock.sendall(GREETING)
            return sock
        except OSError as error:
            if time.monotonic() > deadline:
                sys.exit("grader.keyboard: no grader on 127.0.0.1:%d (%s). Start it first: "
                         "python -m pytest grader --check N.M --attach %d" % (port, error, port))
        if not told:
            print("grader.keyboard: waiting for the grader on 127.0.0.1:%d ..." % port,
                  file=sys.stderr, flush=True)
            told = True
        time.sleep(0.2)   # try again soon: a refused connection returns at once


def hand_over(sock: socket.socket) -> tuple[threading.Lock, list]:
    """The client's standard streams become the connection to the grader. Text-mode
    input reads line endings as on Windows (as when the grader starts the client);
    sys.stdin.buffer gets the bytes typed."""
    lock = threading.Lock()
    sys.stdin = io.TextIOWrapper(sock.makefile("rb"), encoding="utf-8", newline=None)
    streams = []
    for name, kind in (("stdout", b"o"), ("stderr", b"e")):
        stream = io.TextIOWrapper(io.BufferedWriter(Output(sock, kind, lock)),
                                  encoding="utf-8", line_buffering=True, write_through=True)
        setattr(sys, name, stream)
        streams.append(stream)
    return lock, streams


def breakpoint_at_the_terminal(*args, **kwargs) -> None:
    """breakpoint() in the client: pdb talks with you at the terminal, not with the
    grader (the client's sys.stdin and sys.stdout are the grader's now)."""
    import pdb
    pdb.Pdb(stdin=sys.__stdin__, stdout=sys.__stdout__).set_trace(sys._getframe(1))


def prompts_at_the_terminal() -> None:
    """Under `python -m pdb -m grader.keyboard ...`, pdb reads its commands with
    input(), which reads sys.stdin: the grader's now. So input() called by pdb (through
    the cmd module, or itself) reads the terminal; called by your client, the grader."""
    client_input = builtins.input

    def input_for_whom(prompt: str = "") -> str:
        if sys._getframe(1).f_globals.get("__name__") not in ("cmd", "pdb"):
            return client_input(prompt)
        sys.__stdout__.write(prompt)
        sys.__stdout__.flush()
        line = sys.__stdin__.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    builtins.input = input_for_whom


def run_client(port: int, script: str, extra: list[str]) -> None:
    sock = reach_grader(port)
    terminal_input = builtins.input
    lock, streams = hand_over(sock)
    if os.environ.get("PYTHONBREAKPOINT") is None:
        sys.breakpointhook = breakpoint_at_the_terminal
    prompts_at_the_terminal()
    told = []

    def tell_exit(status: int) -> None:
        """The client's exit status, once, after its last output."""
        if told:
            return
        told.append(status)
        for stream in streams:
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        send_record(sock, lock, b"x", str(status).encode())
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        # The terminal is yours again (pdb may run the program once more).
        sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__
        builtins.input, sys.breakpointhook = terminal_input, sys.__breakpointhook__
        threading.excepthook = quiet_once_ended

    def quiet_once_ended(args) -> None:
        """The client has ended, but this process may go on (pdb restarts the program):
        a thread of the ended client that still wakes up finds its connections closed.
        That is no error of the client's: no traceback for it."""
        if not issubclass(args.exc_type, OSError):
            threading.__excepthook__(args)

    real_exit = os._exit

    def exit_now(status: int) -> None:   # a client may end with os._exit(): tell it first
        tell_exit(status)
        real_exit(status)

    os._exit = exit_now
    status = [0]
    atexit.register(lambda: tell_exit(status[0]))   # after its other threads have ended
    sys.argv = [script, "--host", "127.0.0.1", "--port", str(port)] + extra
    sys.path[0] = os.path.dirname(os.path.abspath(script))   # as `python script` sets it
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as end:
        status[0] = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
        if end.code is not None and not isinstance(end.code, int):
            print(end.code, file=sys.stderr)
    except KeyboardInterrupt:
        status[0] = 130
    except BaseException:
        traceback.print_exc()   # to the grader, as Python would to the screen
        status[0] = 1
    if not any(t.is_alive() and not t.daemon for t in threading.enumerate()
               if t is not threading.current_thread()):
        tell_exit(status[0])    # nothing else keeps it alive: it ends now
    sys.exit(status[0])


def main(argv: list[str]) -> None:
    if len(argv) < 2 or not argv[0].isdigit():
        sys.exit("usage: python -m grader.keyboard PORT path/to/chat_client.py "
                 "(the PORT you gave: python -m pytest grader --check N.M --attach PORT)")
    run_client(int(argv[0]), argv[1], argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
