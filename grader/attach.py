"""Debugging a failing check: run it against a server you started, in your debugger.

    pytest grader --check 1.9 --attach 7777        the check talks to YOUR server on
                                                   127.0.0.1:7777 (or --attach HOST:PORT)
    pytest grader --check 1.9 --show-exchange      what the check sends and expects, to
                                                   replay by hand; nothing is run

Attached, the grader starts no program: it connects to the server you started
yourself (in VS Code's or PyCharm's debugger, or under pdb), runs one check's
exchange against it, and fails with the same conversation, Expected/Got and
hint as a normal grading. Every wait for something that must come (a reply, a
close, a flood's answers) is `--patience` times longer (300 by default: a 2 s
wait for a reply becomes 10 minutes, time for you at a breakpoint), while a wait
for silence (nothing more may come) keeps its length. The conversation is shown
as it happens, so at a breakpoint you can see what the grader has sent.

A client check runs against the client you started through grader/keyboard.py
(`python -m grader.keyboard 7777 stages/1_echo/chat_client.py`, after the
grader): the grader plays the server on the --attach port, and types into your
client and reads what it prints through the keyboard's connection.

What cannot run attached fails at once with "Not run attached", the reason, and
scores nothing: a check that must watch or stop the server's process itself
(WHY_NOT_ATTACHED). One check per run: your server keeps its clients' names
from one check to the next (docs/developing.md § Decisions).

The options live here, and `--check` (select checks by number) serves normal
gradings too; the plugin calls in at four places: the options (options.py),
its set-up (conftest.py), the conversation fixture and the server fixture (and
test_client.py's client_program fixture, at one).
"""

from __future__ import annotations

import re
import socket
import textwrap
import threading
import time
import types

import pytest

from grader.clientside import CONNECT_TIMEOUT, ClientLink, ClientUnderTest
from grader.programs import TAIL_BYTES
from grader.serverside import START_TIMEOUT, ServerUnderTest
from grader.system import WINDOWS
from grader.stages import STAGES
from grader.failure import Conversation
from grader.wire import WAIT

PATIENCE = 300          # attached: waits for what must come are this many times longer
ATTACHED_TIME_LIMIT = 3600   # an attached check's time limit: its normal one (timer.py's
                             # CHECK_TIMEOUT) times the patience, an hour at most
PROBE_PAUSE = 0.2       # how often the grader tries your server until it listens

# Server checks that must watch or stop the server's process themselves: {function: why}.
WHY_NOT_ATTACHED = {
    "test_idle_server_is_idle": (
        "it measures how much CPU your server's process uses, and the grader can read that "
        "only of a process it started (under a debugger it would measure the debugger too)"),
    "test_ctrl_c": (
        "it presses Ctrl-C in your server and starts a second server on the same port, "
        "which only a server the grader started lets it do"),
}
KEYBOARD_GREETING = b"CHATKIT-KEYBOARD\n"   # grader/keyboard.py's first bytes
GREETING_WAIT = 1.0     # how long a first connection has to say it is grader/keyboard.py


def add_options(group) -> None:
    group.addoption("--check", action="append", default=[], metavar="N.M",
                    help="run only this check, by its number (1.9, 2.20); repeat or "
                         "comma-separate for several")
    group.addoption("--attach", metavar="[HOST:]PORT", default=None,
                    help="run one check against the server YOU started (say, in your "
                         "debugger) at HOST:PORT (HOST defaults to 127.0.0.1); the grader "
                         "starts nothing, and waits minutes, not seconds, for its replies")
    group.addoption("--patience", metavar="N", default=None,
                    help="with --attach: waits for what must come are N times longer "
                         "(default %d: a 2 s wait for a reply becomes 10 minutes)" % PATIENCE)
    group.addoption("--show-exchange", action="store_true", default=False,
                    help="list what each chosen check sends and expects, and run nothing")


def parse_address(value: str) -> tuple[str, int]:
    """'7777' -> ('127.0.0.1', 7777); 'HOST:PORT' -> (HOST, PORT). Raises UsageError."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise pytest.UsageError("--attach %s: give the port your server listens on, e.g. "
                                "--attach 7777 or --attach 127.0.0.1:7777" % value)
    return host, int(port)


def parse_patience(value: str | None) -> float:
    if value is None:
        return PATIENCE
    try:
        patience = float(value)
    except ValueError:
        patience = 0
    if not patience >= 1:
        raise pytest.UsageError("--patience %s: give a number, 1 or more (1: a normal "
                                "grading's waits)" % value)
    return patience


def configure(config, grader) -> None:
    """Called by conftest's pytest_configure: read the options, register the plugin."""
    address = config.getoption("--attach")
    attach = Attach(grader, config,
                    parse_address(address) if address is not None else None,
                    parse_patience(config.getoption("--patience")),
                    [v.strip() for value in config.getoption("--check")
                     for v in value.split(",") if v.strip()],
                    config.getoption("--show-exchange"))
    if config.getoption("--patience") is not None and attach.address is None:
        raise pytest.UsageError("--patience goes with --attach: a server the grader starts "
                                "is never stopped at a breakpoint")
    if attach.address is not None or attach.show_only:
        grader.starts_spares = False   # nothing of the student's is started ahead
        grader.who = ""                # ... nor at all: who would run it is no news
    config.stash[ATTACH] = attach
    config.pluginmanager.register(attach, "chatkit-attach")


ATTACH = pytest.StashKey["Attach"]()


def new_conversation(config) -> Conversation:
    """The conversation fixture's: patient, and shown as it happens, when attached."""
    attach = config.stash.get(ATTACH, None)
    if attach is None or attach.address is None:
        return Conversation()
    return LiveConversation(config, attach.patience)


def attached_client(config, stage_dir, conversation, sandbox) -> "AttachedClient | None":
    """The client_program fixture's: the student's own client when attached, else None."""
    attach = config.stash.get(ATTACH, None)
    if attach is None or attach.address is None:
        return None
    return AttachedClient(attach.address, stage_dir, conversation, sandbox)


def attached_server(config, stage_dir, conversation, sandbox) -> "AttachedServer | None":
    """The server fixture's: the student's own server when attached, else None."""
    attach = config.stash.get(ATTACH, None)
    if attach is None or attach.address is None:
        return None
    return AttachedServer(attach.address, stage_dir, conversation, sandbox)


class Attach:
    """The plugin: --check's selection, --show-exchange, and the attached run's rules."""

    def __init__(self, grader, config, address, patience, labels, show_only) -> None:
        self.grader = grader
        self.config = config
        self.address = address          # (host, port) of the student's server, or None
        self.patience = patience
        self.labels = labels            # --check N.M, as given
        self.show_only = show_only
        self.docs: dict[str, str] = {}  # each check's docstring, by its label

    # --- collection: which checks ---------------------------------------------------
    @pytest.hookimpl(trylast=True)   # after the Grader has made its checks
    def pytest_collection_modifyitems(self, config, items):
        checks = self.grader.checks
        for item in items:
            if item.nodeid in checks:
                self.docs[checks[item.nodeid].label] = item.function.__doc__ or ""
        if self.labels:
            known = {c.label for c in checks.values()}
            unknown = [label for label in self.labels if label not in known]
            if unknown:
                checks.clear()   # nothing runs: no score table above the error
                raise pytest.UsageError(
                    "--check %s: no such check%s; the checks are numbered N.M, as the score "
                    "table shows them (pytest grader --show-exchange lists them all)"
                    % (", ".join(unknown), " in the stages chosen" if
                       self.grader.stages != STAGES else ""))
            chosen = [i for i in items if i.nodeid not in checks
                      or checks[i.nodeid].label in self.labels]
            dropped = [i for i in items if i not in chosen]
            if dropped:
                config.hook.pytest_deselected(items=dropped)
            items[:] = chosen
        if self.address is None or self.show_only:
            return
        selected = [checks[i.nodeid] for i in items if i.nodeid in checks]
        if len(selected) != 1:
            checks.clear()
            raise pytest.UsageError(
                "--attach runs one check at a time, and %s chosen: name one with --check N.M "
                "(e.g. --check %s). Your server keeps what it learnt from one check to the next "
                "(the names its clients took), so a second check would meet the first one's "
                "leftovers: restart your server before each attached run."
                % ("%d checks are" % len(selected) if selected else "no check is",
                   selected[0].label if selected else "1.1"))
        for item in items:   # time for a human at a breakpoint, bounded all the same
            usual = item.get_closest_marker("timeout")
            if usual is not None and usual.args:
                limit = min(usual.args[0] * self.patience, ATTACHED_TIME_LIMIT)
                item.add_marker(pytest.mark.timeout(limit), append=False)

    # --- --show-exchange: print, run nothing ------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        checks = sorted(self.grader.checks.values(), key=lambda c: (c.stage, c.number))
        describe = self.describe
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if self.show_only:
            for check in checks:
                for line in describe(check):
                    reporter.write_line(line)
                reporter.write_line("")
            attachable = [c for c in checks if self.why_not(c) is None]
            if attachable:
                reporter.write_line("Replay a server check against your own server, in your "
                                    "debugger: python -m pytest grader --check %s --attach "
                                    "7777 (docs/students.md § Debugging a failing check)"
                                    % attachable[0].label)
            self.grader.checks.clear()   # nothing was run: no score table
            return True
        if self.address is not None and checks:
            for line in self.banner(checks[0], self.why_not(checks[0]) is None):
                reporter.write_line(line)
        return None

    def describe(self, check) -> list[str]:
        return describe_check(check, textwrap.dedent(self.docs.get(check.label, "")))

    def banner(self, check, runs: bool) -> list[str]:
        host, port = self.address
        lines = ["", "Attached: check %s runs against the %s you started."
                 % (check.label, check.tests)]
        if runs and check.tests == "client":
            lines.append("  The grader plays the server on %s:%d. Start your client in your "
                         "debugger through the grader's keyboard (it types into your client and "
                         "reads what it prints): python -m grader.keyboard %d "
                         "stages/%s/chat_client.py" % (host, port, port, check.stage))
            lines.append("  The grader waits up to %s for each thing your client must do, so "
                         "you can stop at a breakpoint and step." % minutes(WAIT * self.patience))
        elif runs:
            lines.append("  Start it first, fresh (no names held), in your debugger: "
                         "python stages/%s/chat_server.py --port %d" % (check.stage, port))
            lines.append("  The grader connects to %s:%d and waits up to %s for each "
                         "reply, so you can stop at a breakpoint and step."
                         % (host, port, minutes(WAIT * self.patience)))
        lines += ["  " + line for line in self.describe(check)]
        if runs:
            lines.append("  The conversation, as it happens:")
        return lines

    # --- running: what cannot run attached fails at once, scoring nothing -------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item):
        if self.address is None:
            return
        check = self.grader.checks.get(item.nodeid)
        if check is None:
            return
        why = self.why_not(check)
        if why:
            text = ("Not run attached: check %s cannot run against a program you started: %s. "
                    "It scores 0 in this run. Run it the normal way (the grader starts your "
                    "program):" % (check.label, why))
            pytest.fail("\n".join(textwrap.wrap(text, 88, subsequent_indent="    ") +
                                  ["    python -m pytest grader --check %s" % check.label]),
                        pytrace=False)

    @staticmethod
    def why_not(check) -> str | None:
        """Why `check` cannot run attached, or None if it can."""
        return WHY_NOT_ATTACHED.get(check.function)


def describe_check(check, doc: str) -> list[str]:
    """A check as --show-exchange lists it: number, title, and its docstring (what it
    sends and expects), without the design notes meant for the kit's developers."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", doc.strip())]
    kept = [p for p in paragraphs if p and not p.startswith("Design.")]
    lines = ["%s %s (%s check, %d point%s)" % (check.label, check.title, check.tests,
                                               check.points, "" if check.points == 1 else "s")]
    for paragraph in kept:
        lines += textwrap.wrap(paragraph, 88, initial_indent="    ", subsequent_indent="    ")
    return lines


def minutes(seconds: float) -> str:
    return "%.0f s" % seconds if seconds < 120 else "%.0f minutes" % (seconds / 60)


class LiveConversation(Conversation):
    """An attached check's conversation: patient, and each line shown as it is said, so
    a student stopped at a breakpoint sees what the grader has sent so far."""

    def __init__(self, config, patience: float) -> None:
        super().__init__()
        self.patience = patience
        self.config = config

    def log(self, line: str) -> None:
        super().log(line)
        capture = self.config.pluginmanager.getplugin("capturemanager")
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        if capture is None:
            reporter.write_line("    " + line)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line("    " + line)
            reporter.flush()


class AttachedServer(ServerUnderTest):
    """The student's own server, which the grader did not start: it only connects to it.

    No process to watch: `program` stays None, so a failure shows no exit status or
    output (the student's terminal shows them), and nothing is stopped at the end."""

    def __init__(self, address: tuple[str, int], stage_dir, conversation, sandbox) -> None:
        super().__init__(stage_dir, conversation, sandbox, spares=False)
        self.host, self.port = address
        self.reached = False

    def start(self, port: int | None = None) -> None:
        """Wait (patiently) until the student's server accepts a connection; that
        connection is the check's first client, as in a normal grading."""
        self.conv.log("(attached to your server at %s:%d: started by you, so its output "
                      "is in your terminal)" % (self.host, self.port))
        limit = self.conv.patient(START_TIMEOUT)
        deadline = time.monotonic() + limit
        told = False
        while True:
            try:
                self._spare = socket.create_connection((self.host, self.port), timeout=limit)
                self.reached = True
                return
            except OSError as error:
                problem = error
            if time.monotonic() >= deadline:
                break
            if not told:
                self.conv.log("(nothing listens at %s:%d yet: waiting for you to start your "
                              "server, up to %s)" % (self.host, self.port, minutes(limit)))
                told = True
            time.sleep(PROBE_PAUSE)   # try again soon: a refused connection returns at once
        self.conv.fail("your server accepts a connection at %s:%d" % (self.host, self.port),
                       "nothing accepted one within %s (%s)" % (minutes(limit), problem),
                       "start your server first, on the port you gave --attach: python "
                       "%s --port %d (docs/students.md § Debugging a failing check)."
                       % (self._short_script(), self.port))

    def _ensure_started(self) -> None:
        if not self.reached:
            self.start()

    def expect_running(self, duration: float, hint: str) -> None:
        """A process the grader did not start can't be watched: the check's next
        connection tells whether the server still runs. The pause is kept (a server
        that wrongly stops when its last client leaves has time to stop)."""
        time.sleep(duration)   # the check's own window, not a synchronisation

    def interrupt(self) -> None:   # never reached: Ctrl-C's check is not run attached
        raise RuntimeError("the grader can't press Ctrl-C in a server it did not start")

    def stop(self) -> None:
        """Close the grader's connections; never stop the student's server."""
        self.close_probe()


class AttachedClient(ClientUnderTest):
    """The student's own client, started in their debugger through grader/keyboard.py:
    the grader plays the server on the --attach address, and types into the client and
    reads what it prints through the keyboard's connection (RemoteProgram)."""

    def __init__(self, address: tuple[str, int], stage_dir, conversation, sandbox) -> None:
        super().__init__(stage_dir, conversation, sandbox)
        self.host, self.port = address
        self.keyboard: socket.socket | None = None

    def start(self) -> ClientLink:
        command = "python -m grader.keyboard %d %s/%s/chat_client.py" % (
            self.port, "stages", self.stage_dir.name)
        self._listener = listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if not WINDOWS:   # run again at once on the same port (on Windows it would share it)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
            listener.listen(2)
            problem = None
        except OSError as error:
            problem = error
        if problem is not None:
            self.conv.fail("the grader listens on %s:%d" % (self.host, self.port),
                           "it can't: %s" % problem, "is something else (a server of yours?) "
                           "on that port? Give --attach another port, and your client too.")
        self.conv.log("(the grader plays the server on %s:%d, and waits for your client, "
                      "started by you: %s)" % (self.host, self.port, command))
        limit = self.conv.patient(CONNECT_TIMEOUT)
        self.keyboard = self._accept_within(limit, "grader/keyboard.py connects (%s)" % command)
        if not self._greeted(self.keyboard):
            self.conv.fail("your client, started through the grader's keyboard: %s" % command,
                           "a connection that did not say it came from grader/keyboard.py",
                           "a client started on its own reads your keyboard and prints on "
                           "your screen, where the grader can't type or read: start it "
                           "through grader/keyboard.py (docs/students.md § Debugging a "
                           "failing check).")
        self.program = RemoteProgram(self.keyboard)
        self.conv.programs.append(self.program)
        self.link = ClientLink(self._accept_within(limit, "the client connects"),
                               self.conv, self.program)
        self.conv.log("client connects")
        return self.link

    def _accept_within(self, limit: float, what: str) -> socket.socket:
        deadline = time.monotonic() + limit
        self._listener.settimeout(PROBE_PAUSE)
        while time.monotonic() < deadline and (self.program is None
                                               or self.program.exit_status() is None):
            try:
                sock, _ = self._listener.accept()
                sock.settimeout(None)
                return sock
            except OSError:
                pass   # not yet: look again (and whether the client has ended meanwhile)
        status = self.program.exit_status() if self.program is not None else None
        self.conv.fail(what, "nothing within %s" % minutes(limit) if status is None else
                       "it exited with status %s without connecting" % status,
                       "start your client with --host and --port as grader/keyboard.py "
                       "gives them (docs/students.md § Debugging a failing check).")

    @staticmethod
    def _greeted(sock: socket.socket) -> bool:
        sock.settimeout(GREETING_WAIT)
        data = b""
        try:
            while len(data) < len(KEYBOARD_GREETING):
                more = sock.recv(len(KEYBOARD_GREETING) - len(data))
                if not more:
                    break
                data += more
        except OSError:
            pass
        sock.settimeout(None)
        return data == KEYBOARD_GREETING

    # stop(): ClientUnderTest's; self.program is a RemoteProgram, whose stop() leaves the
    # student's client running (it is theirs to stop) and closes only the grader's side.


class RemoteProgram:
    """The client a student started through grader/keyboard.py, seen as a Program: its
    standard input, output, error and exit status travel over the keyboard's connection
    (records: a kind, b'o', b'e' or b'x', a 4-digit length, the bytes)."""

    label = "client"
    limit_reason = ""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.started = time.monotonic()
        self.out = bytearray()
        self.err = bytearray()
        self.status = None
        self.ended = threading.Event()    # its exit was told, or the connection ended
        self.proc = types.SimpleNamespace(stdin=KeyboardInput(sock), pid=None)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        reader = self.sock.makefile("rb")
        try:
            while True:
                head = reader.read(5)
                if len(head) < 5 or not head[1:].isdigit():
                    return
                data = reader.read(int(head[1:]))
                kind = head[:1]
                if kind == b"o":
                    self.out += data
                elif kind == b"e":
                    self.err += data
                elif kind == b"x":
                    self.status = int(data)
                    return
        except (OSError, ValueError):
            return
        finally:
            self.ended.set()

    def was_sent(self, count: int) -> None:
        pass   # no output limit on a program the grader did not start

    def printed(self) -> int:
        return len(self.out) + len(self.err)

    def stdout(self) -> bytes:
        return bytes(self.out)

    def stderr(self) -> bytes:
        return bytes(self.err)

    def stdout_since(self, offset: int) -> tuple[int, bytes]:
        return offset, bytes(self.out[offset:])

    def stdout_count(self) -> int:
        return len(self.out)

    def wait_stdout_past(self, count: int, timeout: float) -> None:
        time.sleep(timeout)   # the keyboard's records come in a thread: look again soon

    def exit_status(self):
        return self.status

    def wait_exit(self, timeout: float):
        self.ended.wait(timeout)
        return self.status

    def describe(self) -> str:
        lines = [] if self.status is None else ["The client exited with status %s." % self.status]
        for name, data in (("standard output", self.out), ("standard error", self.err)):
            text = bytes(data[-TAIL_BYTES:]).decode("utf-8", "replace")
            if text.strip():
                lines.append("The client's %s (the end of it):" % name)
                lines.extend("    | " + line[:300] for line in text.rstrip().splitlines()[-25:])
        return "\n".join(lines)

    def stop(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class KeyboardInput:
    """What the checks type (clientside.py writes to program.proc.stdin): sent to
    grader/keyboard.py, which hands it to the client as its standard input."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)   # end of input, as Ctrl-D
