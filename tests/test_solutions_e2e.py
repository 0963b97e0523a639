"""End-to-end tests of the reference solutions: real processes, real sockets.

Every test starts the stage's chat_server.py (and sometimes chat_client.py)
as its own process on a free port, talks to it over TCP, and always stops it
afterwards.  The framing code here is the test's own, written again on
purpose: if protocol.py were wrong, these tests must not agree with it.

Every wait has a deadline; nothing here sleeps in the hope that the server
has caught up.
"""

import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gradekit import KIT, STAGES

sys.path.insert(0, str(KIT))
from grader import system  # noqa: E402  (only to press Ctrl-C on Windows, as 4.8 does)

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
NAMING = STAGES[1:]      # stages with commands and names
MESSAGING = STAGES[2:]   # stages with MSG
POSIX = os.name == "posix"
WAIT = 5.0               # the longest we wait for any one thing
HEADER = 4

pytestmark = pytest.mark.timeout(60)


# --- the test's own framing ----------------------------------------------------

def frame(payload):
    """4 ASCII digits (the length in bytes), then the payload."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return b"%04d" % len(payload) + payload


def wait_for(condition, what, timeout=WAIT):
    """Poll `condition()` until it is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(0.01)


class Peer:
    """A scripted client on a raw socket."""

    def __init__(self, port, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(WAIT)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.eof = False

    def send(self, payload):
        self.sock.sendall(frame(payload))

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_bytewise(self, payload):
        for i, byte in enumerate(frame(payload)):
            self.sock.sendall(bytes([byte]))
            time.sleep(0.002)   # pacing, so each byte leaves as its own segment

    def _take(self):
        """One complete payload from the buffer, or None."""
        if len(self.buffer) < HEADER:
            return None
        header = self.buffer[:HEADER]
        assert all(48 <= b <= 57 for b in header) and int(header) <= 1024, \
            "the server sent a bad header %r" % header
        end = HEADER + int(header)
        if len(self.buffer) < end:
            return None
        payload, self.buffer = self.buffer[HEADER:end], self.buffer[end:]
        return payload

    def _read_more(self, deadline):
        """Receive once; False if the deadline passed first."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionError:
            data = b""
        if not data:
            self.eof = True
        self.buffer += data
        return True

    def recv(self, timeout=WAIT):
        """The next payload (bytes); the test fails if none comes in time."""
        deadline = time.monotonic() + timeout
        while True:
            payload = self._take()
            if payload is not None:
                return payload
            if self.eof:
                pytest.fail("the server closed the connection; a message was expected")
            if not self._read_more(deadline):
                pytest.fail("no message within %.1f s" % timeout)

    def expect(self, payload, timeout=WAIT):
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        assert self.recv(timeout) == payload

    def expect_error(self):
        reply = self.recv()
        assert reply.split(b" ")[0] == b"ERROR", reply

    def expect_closed(self, timeout=WAIT):
        """The server must close this connection without sending anything more."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            if not self._read_more(deadline):
                pytest.fail("the connection was not closed within %.1f s" % timeout)
        assert self._take() is None, "unexpected message before the close"

    def reset(self):
        """Vanish abruptly: SO_LINGER 0 makes close() send a TCP reset."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self):
        self.sock.close()


# --- processes -----------------------------------------------------------------

def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def default_sigint():
    """In the child, before exec: make sure SIGINT is not ignored (it is when the
    tests themselves run as a background job), so Ctrl-C tests mean something."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Program:
    """A started program whose output goes to files; stop() always kills it."""

    def __init__(self, argv, folder, cwd=None, stdin=False):
        self.out_path = folder / ("out-%d" % id(self))
        self.err_path = folder / ("err-%d" % id(self))
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8",
                   PYTHONDONTWRITEBYTECODE="1")
        # Windows: a console of its own, so that Ctrl-C can be pressed in it (signal())
        extra = ({"start_new_session": True, "preexec_fn": default_sigint} if POSIX
                 else {"creationflags": subprocess.CREATE_NO_WINDOW})
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=out, stderr=err,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, **extra)

    # What the program printed, its line endings read as text mode reads them: Windows
    # writes "\r\n" where Linux and macOS write "\n".
    def stdout(self):
        return self.out_path.read_bytes().replace(b"\r\n", b"\n")

    def stderr(self):
        return self.err_path.read_bytes().replace(b"\r\n", b"\n")

    def write(self, line):
        self.proc.stdin.write(line.encode("utf-8") + b"\n")
        self.proc.stdin.flush()

    def wait(self, timeout=WAIT):
        """The exit status; fails the test if the program is still running."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("the program did not exit within %.1f s" % timeout)

    def press_ctrl_c(self):
        """As a terminal does: SIGINT to the process group; on Windows, the console's
        Ctrl-C event, sent the grader's way (check 4.8)."""
        if POSIX:
            os.killpg(self.proc.pid, signal.SIGINT)
        else:
            system.press_ctrl_c(self.proc.pid)

    def stop(self):
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            if POSIX:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            else:
                self.proc.kill()
        self.proc.wait(WAIT)


class Server:
    """A solution server running on its own port."""

    def __init__(self, program, port):
        self.program = program
        self.port = port
        self.peers = []

    def connect(self, rcvbuf=None):
        peer = Peer(self.port, rcvbuf)
        self.peers.append(peer)
        return peer


@pytest.fixture
def launch(tmp_path):
    """launch(argv, cwd=None, stdin=False) starts a program; all are killed at the end."""
    programs = []

    def start(argv, cwd=None, stdin=False):
        program = Program(argv, tmp_path, cwd, stdin)
        programs.append(program)
        return program

    yield start
    for program in programs:
        program.stop()


def wait_listening(program, port):
    """Poll until the server accepts a connection (or exits, or time runs out)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if program.proc.poll() is not None:
            pytest.fail("the server exited with status %s: %s"
                        % (program.proc.returncode, program.stderr().decode(errors="replace")))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.01)
    pytest.fail("the server did not listen on port %d within %.1f s" % (port, WAIT))


@pytest.fixture
def start_server(launch):
    """start_server(stage, port=None, cwd=None) -> a listening Server."""
    servers = []

    def start(stage, port=None, cwd=None):
        port = port or free_port()
        script = "chat_server.py" if cwd else str(SOLUTIONS / stage / "chat_server.py")
        program = launch([sys.executable, script, "--host", "127.0.0.1", "--port", str(port)],
                         cwd=cwd)
        wait_listening(program, port)
        server = Server(program, port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        for peer in server.peers:
            peer.close()


def roundtrip(peer, stage, token):
    """One request and its reply, whatever the stage: echo, or NAME -> HELLO."""
    if stage == "1_echo":
        peer.send(token)
        peer.expect(token)
    else:
        peer.send("NAME " + token)
        peer.expect("HELLO " + token)


def named(server, name):
    peer = server.connect()
    peer.send("NAME " + name)
    peer.expect("HELLO " + name)
    return peer


# --- every stage: framing and many clients -------------------------------------

@pytest.mark.parametrize("stage", STAGES)
def test_message_one_byte_at_a_time(start_server, stage):
    peer = start_server(stage).connect()
    request, reply = ("héllo", "héllo") if stage == "1_echo" else ("NAME héllo", "HELLO héllo")
    peer.send_bytewise(request)
    peer.expect(reply)


@pytest.mark.parametrize("stage", STAGES)
def test_three_messages_in_one_write(start_server, stage):
    peer = start_server(stage).connect()
    if stage == "1_echo":
        requests, replies = ["one", "two", "three"], ["one", "two", "three"]
    else:
        requests = ["NAME ann", "GET_NAMES", "NAME bo"]
        replies = ["HELLO ann", "NAMES ann", "HELLO bo"]
    peer.send_raw(b"".join(frame(r) for r in requests))
    for reply in replies:
        peer.expect(reply)


@pytest.mark.parametrize("stage", STAGES)
def test_stalled_client_does_not_delay_others(start_server, stage):
    server = start_server(stage)
    staller = server.connect()
    request = "halfway" if stage == "1_echo" else "NAME halfway"
    data = frame(request)
    staller.send_raw(data[:7])
    others = [server.connect() for _ in range(3)]
    for i, other in enumerate(others):
        roundtrip(other, stage, "other%d" % i)
    staller.send_raw(data[7:])
    staller.expect("halfway" if stage == "1_echo" else "HELLO halfway")


@pytest.mark.parametrize("stage", STAGES)
def test_sixty_clients_at_once(start_server, stage):
    server = start_server(stage)
    peers = [server.connect() for _ in range(60)]
    for i, peer in enumerate(peers):
        peer.send(("c%d" % i) if stage == "1_echo" else "NAME c%d" % i)
    for i, peer in enumerate(peers):
        peer.expect(("c%d" % i) if stage == "1_echo" else "HELLO c%d" % i)


@pytest.mark.parametrize("stage", STAGES)
def test_bad_headers_get_error_then_close(start_server, stage):
    server = start_server(stage)
    bystander = server.connect()
    roundtrip(bystander, stage, "by1")
    for header in [b"abcd", b"1025", b"9999", b"-001", b" 123"]:
        bad = server.connect()
        bad.send_raw(header + b"xyz")
        bad.expect_error()
        bad.expect_closed()
    roundtrip(bystander, stage, "by2")


@pytest.mark.parametrize("stage", STAGES)
def test_clients_leaving_do_not_stop_the_server(start_server, stage):
    server = start_server(stage)
    leaver = server.connect()
    roundtrip(leaver, stage, "leaver")
    leaver.close()
    halfway = server.connect()
    halfway.send_raw(b"0020only part")
    halfway.close()
    stayer = server.connect()
    roundtrip(stayer, stage, "stayer")
    roundtrip(stayer, stage, "stayer2")


@pytest.mark.parametrize("stage", STAGES)
def test_client_closing_with_replies_unread(start_server, stage):
    """Closing with unread data makes the client's system send a reset, not a plain close."""
    server = start_server(stage)
    hasty = server.connect()
    hasty.send_raw(frame("NAME hasty" if stage != "1_echo" else "hasty") * 3)
    readable, _, _ = select.select([hasty.sock], [], [], WAIT)
    assert readable, "no reply arrived"
    hasty.close()                             # replies unread: a reset
    stayer = server.connect()
    roundtrip(stayer, stage, "stayer")
    roundtrip(stayer, stage, "stayer2")
    assert server.program.proc.poll() is None


@pytest.mark.parametrize("stage", STAGES)
def test_the_last_reply_ends_cleanly_though_more_was_sent(start_server, stage):
    """The server's last message to a client (ERROR after a bad header; BYE after EXIT)
    is followed by a plain end of the stream, never a reset, even when the client sent
    more than the server reads in one recv(): a reset can throw the last message away
    before the client reads it (Windows does). The 8 KB arrive in one segment, so the
    server holds them unread when it hangs up."""
    server = start_server(stage)
    last_words = [(b"abcd", b"ERROR")] + ([(frame("EXIT"), b"BYE")] if stage == "4_exit" else [])
    for sent, reply in last_words:
        peer = server.connect()
        peer.send_raw(sent + b"x" * 8000)
        assert peer.recv().split(b" ")[0] == reply
        try:
            rest = peer.sock.recv(65536)
        except ConnectionResetError:
            pytest.fail("after %s, the server reset the connection instead of closing it"
                        % reply.decode())
        assert rest == b"" and peer.buffer == b"", "more after %s: %r" % (reply, rest)


@pytest.mark.parametrize("stage", STAGES)
def test_server_runs_from_inside_its_folder(start_server, stage):
    server = start_server(stage, cwd=SOLUTIONS / stage)
    roundtrip(server.connect(), stage, "inside")
    assert server.program.stdout().startswith(
        b"Chat server (stage %s) listening on 127.0.0.1:%d" % (stage[0].encode(), server.port))


@pytest.mark.parametrize("stage", STAGES)
def test_messages_before_a_bad_header_are_handled_first(start_server, stage):
    """Whole messages in the same write as a bad header get their replies, then ERROR."""
    server = start_server(stage)
    if stage == "1_echo":
        requests, replies = ["one", ""], ["one", ""]
    else:
        requests, replies = ["NAME ann", "GET_NAMES"], ["HELLO ann", "NAMES ann"]
    bad = server.connect()
    bad.send_raw(b"".join(frame(r) for r in requests) + b"abcd" + frame("never read"))
    for reply in replies:
        bad.expect(reply)
    bad.expect_error()
    bad.expect_closed()
    if stage != "1_echo":   # its name went with it
        other = server.connect()
        other.send("GET_NAMES")
        other.expect("NAMES")


@pytest.mark.parametrize("stage", STAGES)
def test_protocol_next_to_the_stage_folders(launch, tmp_path, stage):
    """A hand-in of the stage folders plus protocol.py in one folder runs as it is."""
    hand_in = tmp_path / "hand-in"
    shutil.copytree(SOLUTIONS / stage, hand_in / stage)
    shutil.copy(ROOT / "protocol.py", hand_in / "protocol.py")
    port = free_port()
    program = launch([sys.executable, str(hand_in / stage / "chat_server.py"),
                      "--host", "127.0.0.1", "--port", str(port)], cwd=tmp_path)
    wait_listening(program, port)
    peer = Peer(port)
    try:
        roundtrip(peer, stage, "handed")
    finally:
        peer.close()


@pytest.mark.parametrize("program", ["chat_server.py", "chat_client.py"])
@pytest.mark.parametrize("stage", STAGES)
def test_a_port_out_of_range_is_one_clear_line(stage, program):
    done = subprocess.run([sys.executable, str(SOLUTIONS / stage / program), "--port", "99999"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(error) == 1 and "--port" in error[0] and "65535" in error[0], done.stderr


# --- stage 1: echo ---------------------------------------------------------------

def test_echo_is_byte_exact(start_server):
    peer = start_server("1_echo").connect()
    for payload in [b"", b"  two  spaces  ", b"tab\there", "héllo wörld ש".encode("utf-8"),
                    b"x" * 1024, b"\xff\xfe not utf-8"]:
        peer.send(payload)
        peer.expect(payload)


# --- stage 2 and later: commands and names ------------------------------------------

@pytest.mark.parametrize("stage", NAMING)
def test_invalid_utf8_gets_error_and_keeps_the_connection(start_server, stage):
    peer = start_server(stage).connect()
    for payload in [b"\xff\xfe", b"NAME \xc3", b"GET_NAMES\x80"]:
        peer.send(payload)
        peer.expect_error()
    roundtrip(peer, stage, "still")


@pytest.mark.parametrize("stage", NAMING)
def test_empty_unknown_and_inexact_commands(start_server, stage):
    peer = start_server(stage).connect()
    for payload in ["", "HELLO", "name bob", "GET_NAMES x", "GET_NAMES ", " GET_NAMES",
                    "get_names", "NAMEbob"]:
        peer.send(payload)
        peer.expect_error()
    peer.send("GET_NAMES")
    peer.expect("NAMES")


@pytest.mark.parametrize("stage", NAMING)
def test_naming(start_server, stage):
    server = start_server(stage)
    alice, bob, carol = server.connect(), server.connect(), server.connect()
    carol.send("GET_NAMES")
    carol.expect("NAMES")
    alice.send("NAME alice")
    alice.expect("HELLO alice")
    alice.send("NAME alice")                  # its own name again: fine
    alice.expect("HELLO alice")
    bob.send("NAME alice")                    # taken
    bob.expect_error()
    for invalid in ["NAME", "NAME ", "NAME a b", "NAME " + "x" * 17, "NAME tab\there",
                    "NAME nbsp\u00a0x"]:
        bob.send(invalid)
        bob.expect_error()
    bob.send("NAME " + "é" * 16)              # 16 characters, 32 bytes: valid
    bob.expect("HELLO " + "é" * 16)
    bob.send("NAME bob")                      # rename: the old name is free at once
    bob.expect("HELLO bob")
    carol.send("NAME " + "é" * 16)
    carol.expect("HELLO " + "é" * 16)
    carol.send("NAME Zed")
    carol.expect("HELLO Zed")
    server.connect().send("GET_NAMES")
    server.peers[-1].expect("NAMES Zed alice bob")   # plain string order: capitals first


@pytest.mark.parametrize("stage", NAMING)
def test_closing_releases_the_name(start_server, stage):
    server = start_server(stage)
    leaver = named(server, "leaver")
    watcher = named(server, "watcher")
    leaver.close()

    def released():
        watcher.send("GET_NAMES")
        return watcher.recv() == b"NAMES watcher"
    wait_for(released, "the name of a closed client to be released")
    named(server, "leaver")


# --- stage 3 and later: messages ---------------------------------------------------

@pytest.mark.parametrize("stage", MESSAGING)
def test_messaging(start_server, stage):
    server = start_server(stage)
    nobody = server.connect()
    nobody.send("MSG alice hi")                # unnamed sender
    nobody.expect_error()
    alice = named(server, "alice")
    bob = named(server, "bob")
    for bad in ["MSG bob", "MSG bob ", "MSG", "MSG ", "MSG alice hi", "MSG zoe hi",
                "MSG  bob hi", "msg bob hi"]:
        alice.send(bad)
        alice.expect_error()
    alice.send("MSG bob  hi  there  ")        # text kept exactly, spaces and all
    bob.expect("FROM alice  hi  there  ")
    alice.expect("SENT bob")
    bob.send("MSG alice héllo ש")
    alice.expect("FROM bob héllo ש")
    bob.expect("SENT alice")
    bob.send("MSG alice " + "x" * (1024 - 10))   # the longest MSG: its FROM fits
    alice.expect("FROM bob " + "x" * (1024 - 10))
    bob.expect("SENT alice")


@pytest.mark.parametrize("stage", MESSAGING)
def test_from_that_would_not_fit_is_refused(start_server, stage):
    server = start_server(stage)
    sender = named(server, "ש" * 16)          # 32 bytes of name
    named(server, "b")
    sender.send("MSG b " + "x" * (1024 - 6))
    sender.expect_error()


@pytest.mark.parametrize("stage", MESSAGING)
def test_messages_arrive_in_order(start_server, stage):
    server = start_server(stage)
    alice, bob = named(server, "alice"), named(server, "bob")
    alice.send_raw(b"".join(frame("MSG bob %d" % i) for i in range(300)))
    for i in range(300):
        bob.expect("FROM alice %d" % i)
    for i in range(300):
        alice.expect("SENT bob")


@pytest.mark.parametrize("stage", MESSAGING)
def test_flooding_a_client_that_stops_reading(start_server, stage):
    """8 MB of messages to a client that never reads: nobody else notices."""
    server = start_server(stage)
    flooder = named(server, "flooder")
    sink = server.connect(rcvbuf=32 * 1024)
    sink.send("NAME sink")
    sink.expect("HELLO sink")
    carol, dan = named(server, "carol"), named(server, "dan")

    message = frame("MSG sink " + "x" * 1000)
    count = 8 * 1024 * 1024 // len(message) + 1
    replies = {"SENT": 0, "ERROR": 0, "other": 0}

    def drain():   # the flooder reads its replies, as a well-behaved client does
        deadline = time.monotonic() + 30
        while sum(replies.values()) < count and time.monotonic() < deadline:
            payload = flooder.recv(timeout=deadline - time.monotonic())
            word = payload.split(b" ")[0].decode()
            replies[word if word in replies else "other"] += 1

    def flood():
        flooder.sock.settimeout(30)
        flooder.sock.sendall(message * count)

    threads = [threading.Thread(target=drain, daemon=True),
               threading.Thread(target=flood, daemon=True)]
    for thread in threads:
        thread.start()
    wait_for(lambda: sum(replies.values()) >= 100, "the flood to get going")
    for i in range(10):                       # meanwhile, a third pair chats promptly
        started = time.monotonic()
        carol.send("MSG dan ping %d" % i)
        dan.expect("FROM carol ping %d" % i, timeout=2)
        carol.expect("SENT dan", timeout=2)
        assert time.monotonic() - started < 1.0
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()
    assert replies["other"] == 0 and sum(replies.values()) == count, replies
    assert replies["ERROR"] > 0, "the sink was never disconnected"   # past 1 MiB backlog
    carol.send("GET_NAMES")
    carol.expect("NAMES carol dan flooder")


# --- stage 4: EXIT, vanishing clients, Ctrl-C -------------------------------------

def test_exit_flow(start_server):
    server = start_server("4_exit")
    alice, bob = named(server, "alice"), named(server, "bob")
    alice.send_raw(frame("EXIT") + frame("GET_NAMES"))   # nothing is read after EXIT
    alice.expect("BYE")
    alice.expect_closed()
    bob.send("GET_NAMES")                     # the name is free at once
    bob.expect("NAMES bob")
    bob.send("MSG alice hi")
    bob.expect_error()
    named(server, "alice")
    for inexact in ["EXIT ", "exit", "EXIT now"]:
        bob.send(inexact)
        bob.expect_error()
    unnamed = server.connect()
    unnamed.send("EXIT")
    unnamed.expect("BYE")
    unnamed.expect_closed()


def test_nothing_after_exit_not_even_a_bad_header(start_server):
    server = start_server("4_exit")
    alice = named(server, "alice")
    alice.send_raw(frame("EXIT") + b"abcd")   # BYE is the last reply: no ERROR after it
    alice.expect("BYE")
    alice.expect_closed()


def test_vanishing_clients_are_cleaned_up(start_server):
    server = start_server("4_exit")
    watcher = named(server, "watcher")
    idle = named(server, "idle")
    idle.reset()                              # reset while idle
    half = named(server, "half")
    half.send_raw(b"0050only a bit")
    half.reset()                              # reset mid-message
    busy = server.connect(rcvbuf=16 * 1024)
    busy.send("NAME busy")
    busy.expect("HELLO busy")
    watcher.send_raw(b"".join(frame("MSG busy " + "y" * 1000) for i in range(600)))
    for i in range(600):
        watcher.expect("SENT busy")
    busy.reset()                              # reset with output still queued for it

    def all_gone():
        watcher.send("GET_NAMES")
        return watcher.recv() == b"NAMES watcher"
    wait_for(all_gone, "the vanished clients' names to be released")
    for name in ["idle", "half", "busy"]:
        named(server, name)
    assert server.program.proc.poll() is None
    assert b"Traceback" not in server.program.stderr()


def test_ctrl_c_stops_the_server_cleanly(start_server):
    server = start_server("4_exit")
    peers = [named(server, "p%d" % i) for i in range(3)]
    server.program.press_ctrl_c()
    assert server.program.wait(5) == 0
    assert b"Traceback" not in server.program.stderr()
    assert server.program.stdout().strip().splitlines()[-1] == b"Server stopped."
    for peer in peers:
        peer.expect_closed()
    again = start_server("4_exit", port=server.port)    # the port is free at once
    roundtrip(again.connect(), "4_exit", "again")


# --- the clients ---------------------------------------------------------------------

def start_client(launch, stage, port, cwd=None):
    script = "chat_client.py" if cwd else str(SOLUTIONS / stage / "chat_client.py")
    return launch([sys.executable, script, "--host", "127.0.0.1", "--port", str(port)],
                  cwd=cwd, stdin=True)


def wait_output(client, text, timeout=WAIT):
    expected = text.encode("utf-8")
    wait_for(lambda: expected in client.stdout(), "%r in the client's output" % text, timeout)


@pytest.mark.parametrize("stage", STAGES[:3])
def test_client_stages_1_to_3(start_server, launch, stage):
    server = start_server(stage)
    client = start_client(launch, stage, server.port, cwd=SOLUTIONS / stage)
    line, reply = ("héllo  there", "héllo  there") if stage == "1_echo" else (
        "NAME zoé", "HELLO zoé")
    client.write("")                          # empty lines are not sent
    client.write(line)
    wait_output(client, reply)
    client.proc.stdin.close()                 # end of input: exit 0
    assert client.wait() == 0
    assert client.stdout() == reply.encode("utf-8") + b"\n"
    assert client.stderr() == b""


@pytest.mark.parametrize("stage", STAGES[:3])
def test_client_stages_1_to_3_all_input_at_once(start_server, launch, stage):
    """Input that ends at once: the client may exit before the replies arrive."""
    server = start_server(stage)
    client = start_client(launch, stage, server.port)
    line = "quick" if stage == "1_echo" else "NAME quick"
    client.proc.stdin.write(((line + "\n") * 20).encode())
    client.proc.stdin.close()
    assert client.wait() == 0
    assert client.stderr() == b""
    roundtrip(server.connect(), stage, "after")
    assert server.program.proc.poll() is None


def test_client_stage_4_exit_line(start_server, launch):
    server = start_server("4_exit")
    other = named(server, "bob")
    client = start_client(launch, "4_exit", server.port)
    client.write("NAME alice")
    wait_output(client, "HELLO alice\n")
    other.send("MSG alice are you there?")    # arrives while the user types nothing
    wait_output(client, "FROM bob are you there?\n")
    other.expect("SENT alice")
    client.write("x" * 1025)                  # too long: not sent, the client goes on
    wait_for(lambda: b"1025 bytes" in client.stderr(), "the too-long-line error")
    client.write("GET_NAMES\r")               # a Windows line ending is stripped too
    wait_output(client, "NAMES alice bob\n")
    client.write("EXIT")
    assert client.wait() == 0                 # stdin is still open: EXIT alone ends it
    assert client.stdout() == (b"HELLO alice\nFROM bob are you there?\n"
                               b"NAMES alice bob\nBYE\n")
    assert client.stderr() == b"error: line is 1025 bytes; the limit is 1024. Not sent.\n"
    other.send("GET_NAMES")
    other.expect("NAMES bob")


def test_client_stage_4_end_of_input(start_server, launch):
    server = start_server("4_exit")
    client = start_client(launch, "4_exit", server.port, cwd=SOLUTIONS / "4_exit")
    client.proc.stdin.write(b"NAME carol\nGET_NAMES\n")
    client.proc.stdin.close()                 # end of input: EXIT, BYE, status 0
    assert client.wait() == 0
    assert client.stdout() == b"HELLO carol\nNAMES carol\nBYE\n"
    assert client.stderr() == b""


def test_client_stage_4_server_gone(start_server, launch):
    server = start_server("4_exit")
    client = start_client(launch, "4_exit", server.port)
    client.write("NAME dora")
    wait_output(client, "HELLO dora")
    server.program.stop()                     # the server is killed
    assert client.wait() == 1
    assert client.stderr() == b"The server closed the connection.\n"


class FakeServer:
    """A listening socket the test owns, so it can send the client anything."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.port = self.listener.getsockname()[1]

    def accept(self):
        sock, _ = self.listener.accept()
        sock.settimeout(WAIT)
        return sock

    def close(self):
        self.listener.close()


@pytest.fixture
def fake_server():
    server = FakeServer()
    yield server
    server.close()


@pytest.mark.parametrize("stage", STAGES)
def test_client_reports_a_framing_error_as_one(launch, fake_server, stage):
    """Messages before the bad header are printed; then the client says what broke."""
    client = start_client(launch, stage, fake_server.port)
    link = fake_server.accept()
    link.sendall(frame("first") + b"abcd" + frame("never shown"))
    assert client.wait() == 1
    assert client.stdout() == b"first\n"
    stderr = client.stderr().decode("utf-8")
    assert "framing" in stderr and "closed the connection" not in stderr, stderr
    assert "Traceback" not in stderr
    link.close()


@pytest.mark.parametrize("stage", STAGES)
def test_client_when_the_server_resets(launch, fake_server, stage):
    client = start_client(launch, stage, fake_server.port)
    link = fake_server.accept()
    link.sendall(frame("hello"))
    wait_output(client, "hello")
    link.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    link.close()                              # a reset, not a close
    assert client.wait() == 1
    assert client.stderr() == b"The server closed the connection.\n"


def test_client_stage_4_ctrl_c(start_server, launch):
    server = start_server("4_exit")
    client = start_client(launch, "4_exit", server.port)
    client.write("NAME eve")
    wait_output(client, "HELLO eve")
    client.press_ctrl_c()
    assert client.wait() == 130
    assert b"Traceback" not in client.stderr()
