"""Smoke check of the alternative implementations in tests/impls/threaded and tests/impls/asyncio.

A plain script (not collected by pytest):

    python tests/impls/selfcheck_alt.py [threaded|asyncio ...]

Starts each stage's server on a free port, talks to it over raw sockets with
its own framing code, drives each stage's client through a stdin pipe, and
prints one line per check. Every wait is bounded; every process it starts is
killed at the end. Exit status 0 when every check passed.
"""

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
IMPLS = ["threaded", "asyncio"]
STAGES = ["1_echo", "2_naming", "3_messaging", "4_exit"]
PROCS = []
FAILURES = []
ENV = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")


# ---------------------------------------------------------------- plumbing

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def spawn(path, port, **kw):
    proc = subprocess.Popen(
        [sys.executable, path, "--host", "127.0.0.1", "--port", str(port)],
        env=ENV, start_new_session=True, **kw)
    PROCS.append(proc)
    return proc


def kill_all():
    for proc in PROCS:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


class Lines:
    """Collects a pipe's lines in a background thread; get() waits, bounded."""

    def __init__(self, stream):
        self.q = queue.Queue()
        self.all = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in iter(stream.readline, b""):
            self.q.put(line)
            self.all.append(line)
        self.q.put(None)

    def get(self, timeout=3.0):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            return None

    def text(self):
        return b"".join(self.all).decode("utf-8", "replace")


class Server:
    def __init__(self, impl, stage):
        self.port = free_port()
        path = os.path.join(HERE, impl, stage, "chat_server.py")
        self.proc = spawn(path, self.port, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL)
        self.out = Lines(self.proc.stdout)
        self.err = Lines(self.proc.stderr)
        first = self.out.get(5.0)
        if first is None or b"listening on" not in first:
            raise AssertionError("no 'listening on' line: %r / %r" % (first, self.err.text()))
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def peer(self):
        return Peer(self.port)

    def stop(self):
        """SIGINT: must exit 0, without a traceback, and free the port at once."""
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            raise AssertionError("server still running 5 s after SIGINT")
        time.sleep(0.2)
        err = self.err.text()
        assert code == 0, "exit status %r after SIGINT; stderr %r" % (code, err)
        assert "Traceback" not in err, err
        assert not err.strip(), "server not quiet: %r" % err
        s = socket.socket()
        if os.name != "nt":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", self.port))
        finally:
            s.close()


class Peer:
    """A raw client with its own framing."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def send(self, payload, raw=False):
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        self.sock.sendall(payload if raw else b"%04d" % len(payload) + payload)

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for a reply")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed (had %r)" % self.buf)
            self.buf += data

    def recv(self, timeout=3.0):
        deadline = time.monotonic() + timeout
        self._fill(4, deadline)
        size = int(self.buf[:4])
        self._fill(4 + size, deadline)
        payload, self.buf = self.buf[4:4 + size], self.buf[4 + size:]
        return payload

    def ask(self, payload, timeout=3.0):
        self.send(payload)
        return self.recv(timeout)

    def expect(self, payload, want, timeout=3.0):
        got = self.ask(payload, timeout)
        if isinstance(want, str):
            want = want.encode("utf-8")
        assert got == want, "sent %r: want %r, got %r" % (payload, want, got)

    def expect_error(self, payload):
        got = self.ask(payload)
        assert got.startswith(b"ERROR"), "sent %r: want ERROR, got %r" % (payload, got)

    def expect_eof(self, timeout=3.0):
        deadline = time.monotonic() + timeout
        try:
            self._fill(len(self.buf) + 1, deadline)
        except (EOFError, ConnectionResetError):
            return
        raise AssertionError("expected the connection to close, got %r" % self.buf)

    def close(self):
        self.sock.close()


def run(name, fn, *args):
    t0 = time.monotonic()
    try:
        fn(*args)
    except Exception as exc:  # report and go on
        FAILURES.append(name)
        print("FAIL %-55s %s: %s" % (name, type(exc).__name__, exc), flush=True)
        return
    print("ok   %-55s %.2fs" % (name, time.monotonic() - t0), flush=True)


def poll(fn, timeout=2.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# ---------------------------------------------------------------- server checks

def check_echo(srv):
    a, b = srv.peer(), srv.peer()
    for p in [b"hello", b"", "h\u00e9llo \u263a".encode(), b"x" * 1024, b"  spaces  "]:
        a.expect(p, p)
    for ch in b"0005world":  # one byte at a time
        a.sock.sendall(bytes([ch]))
        time.sleep(0.005)
    assert a.recv() == b"world"
    a.send(b"0003one0003two0000", raw=True)
    assert [a.recv(), a.recv(), a.recv()] == [b"one", b"two", b""]
    a.send(b"0005he", raw=True)  # stalls mid-message
    t0 = time.monotonic()
    b.expect("ping", "ping", timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    a.send(b"llo", raw=True)
    assert a.recv() == b"hello"
    a.close()
    b.expect("still", "still")
    b.close()


def check_framing_errors(srv):
    for bad in [b"abcd", b"12x4", b"1025" + b"x" * 1025, b"-001", b" 123"]:
        p, other = srv.peer(), srv.peer()
        p.send(bad, raw=True)
        got = p.recv()
        assert got.startswith(b"ERROR"), (bad, got)
        p.expect_eof()
        if srv.echo:
            other.expect("alive", "alive")
        else:
            other.expect_error("bogus")
        p.close()
        other.close()


def check_concurrent(srv, n=50, prefix="c"):
    peers = [srv.peer() for _ in range(n)]
    errors = []

    def talk(i, p):
        try:
            if srv.echo:
                p.expect("client %d" % i, "client %d" % i)
            else:
                p.expect("NAME %s%d" % (prefix, i), "HELLO %s%d" % (prefix, i))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=talk, args=(i, p)) for i, p in enumerate(peers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors, errors[:3]
    if not srv.echo:
        names = peers[0].ask("GET_NAMES").split()
        assert names[0] == b"NAMES" and set(names[1:]) >= {b"%s%d" % (prefix.encode(), i) for i in range(n)}, names
        assert names[1:] == sorted(names[1:])
    if srv.stage >= 3:
        for i, p in enumerate(peers):
            p.send("MSG %s%d hi from %d" % (prefix, (i + 1) % n, i))
        pb = prefix.encode()
        for i, p in enumerate(peers):
            got = {p.recv(), p.recv()}
            assert got == {b"SENT %s%d" % (pb, (i + 1) % n),
                           b"FROM %s%d hi from %d" % (pb, (i - 1) % n, (i - 1) % n)}, got
    for p in peers:
        p.close()


def check_flood_own(srv):
    """A client that floods commands and never reads stalls only itself."""
    hog, a = srv.peer(), srv.peer()
    msg = b"x" * 1000 if srv.echo else b"GET_NAMES"
    stop = threading.Event()

    def flood():
        hog.sock.settimeout(10)
        data = (b"%04d" % len(msg) + msg) * 256
        try:
            while not stop.is_set():
                hog.sock.sendall(data)
        except OSError:
            pass

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    time.sleep(0.5)
    for i in range(5):
        t0 = time.monotonic()
        a.expect("NAME quick%d" % i if not srv.echo else "q%d" % i,
                 "HELLO quick%d" % i if not srv.echo else "q%d" % i, timeout=1.0)
        assert time.monotonic() - t0 < 1.0
    stop.set()
    try:
        hog.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    hog.sock.close()
    t.join(12)
    a.close()


def check_naming(srv):
    a, b, c = srv.peer(), srv.peer(), srv.peer()
    c.expect("GET_NAMES", "NAMES")
    a.expect("NAME alice", "HELLO alice")
    a.expect("NAME alice", "HELLO alice")  # own name again
    b.expect_error("NAME alice")
    b.expect("NAME bob", "HELLO bob")
    c.expect("GET_NAMES", "NAMES alice bob")
    a.expect("NAME carol", "HELLO carol")  # rename releases alice
    c.expect("GET_NAMES", "NAMES bob carol")
    c.expect("NAME alice", "HELLO alice")
    c.expect("GET_NAMES", "NAMES alice bob carol")
    for bad in ["NAME", "NAME ", "NAME a b", "NAME " + "x" * 17, "NAME a\tb", "NAME a\u3000b",
                "NAME  x", "", "name x", "GET_NAMES x", "get_names", "HELLO", "BYE"]:
        b.expect_error(bad)
    b.expect("GET_NAMES", "NAMES alice bob carol")  # nothing changed
    b.expect("NAME " + "\u00e9" * 16, "HELLO " + "\u00e9" * 16)  # 16 characters, 32 bytes
    b.expect("NAME \U0001F600", "HELLO \U0001F600")
    b.expect_error(b"NAME \xff\xfe")
    b.expect_error(b"\xc3")
    b.expect("GET_NAMES", "NAMES alice carol \U0001F600")  # connection kept
    if srv.stage < 4:
        a.expect_error("EXIT")
    if srv.stage < 3:
        a.expect_error("MSG alice hi")
    # pipelined: one reply per command, in order
    b.sock.sendall(b"".join(b"%04d" % len(p) + p for p in [b"NAME z1", b"bogus", b"GET_NAMES", b"NAME z2"]))
    got = [b.recv() for _ in range(4)]
    assert got[0] == b"HELLO z1" and got[1].startswith(b"ERROR") and got[2] == b"NAMES alice carol z1" \
        and got[3] == b"HELLO z2", got
    for p in (a, b, c):
        p.close()


def check_messaging(srv):
    a, b, u = srv.peer(), srv.peer(), srv.peer()
    poll(lambda: a.expect("NAME alice", "HELLO alice"))
    poll(lambda: b.expect("NAME bob", "HELLO bob"))
    u.expect_error("MSG bob hi")  # unnamed sender
    for text in ["hi", "  two  inner   spaces and trailing  ", "\u00e9\u263a", "MSG x y", " "]:
        a.send("MSG bob " + text)
        got = b.recv()
        assert got == ("FROM alice " + text).encode(), got
        assert a.recv() == b"SENT bob"
    for bad in ["MSG bob", "MSG bob ", "MSG alice hi", "MSG nobody hi", "MSG", "MSG ", "MSG  bob hi"]:
        a.expect_error(bad)
    for i in range(300):
        a.send("MSG bob n%d" % i)
    for i in range(300):
        assert b.recv() == b"FROM alice n%d" % i
        assert a.recv() == b"SENT bob"
    b.send("MSG alice back")
    assert a.recv() == b"FROM bob back" and b.recv() == b"SENT alice"
    for p in (a, b, u):
        p.close()


def check_slow_reader(srv):
    """'slow' never reads while 'fast' sends it 8 MB; another pair is still answered within 1 s."""
    slow, fast, p1, p2 = srv.peer(), srv.peer(), srv.peer(), srv.peer()
    for p, name in ((slow, "slow"), (fast, "fast"), (p1, "p1"), (p2, "p2")):
        p.expect("NAME " + name, "HELLO " + name)
    body = b"y" * 1000
    msg = b"MSG slow " + body
    data = (b"%04d" % len(msg) + msg) * 8400  # > 8 MB: the kernel alone can absorb about 3 MB
    replies = {"n": 0}
    done = threading.Event()

    def drain_fast():
        fast.sock.settimeout(20)
        try:
            while not done.is_set():
                if not fast.sock.recv(65536):
                    break
                replies["n"] += 1
        except OSError:
            pass

    def send_fast():
        fast.sock.sendall(data)

    threading.Thread(target=drain_fast, daemon=True).start()
    sender = threading.Thread(target=send_fast, daemon=True)
    sender.start()
    worst = 0.0
    for i in range(20):
        t0 = time.monotonic()
        p1.send("MSG p2 m%d" % i)
        assert p2.recv(1.0) == b"FROM p1 m%d" % i
        assert p1.recv(1.0) == b"SENT p2"
        worst = max(worst, time.monotonic() - t0)
        time.sleep(0.02)
    sender.join(20)
    assert not sender.is_alive(), "the 4 MB sender was stalled"
    done.set()
    assert worst < 1.0, worst
    names = p2.ask("GET_NAMES").split()
    assert b"p1" in names and b"p2" in names and b"fast" in names, names
    # these designs drop a client whose backlog passed 1 MiB: 'slow' reads less than was sent, then EOF
    got, deadline = 0, time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            slow.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = slow.sock.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
    except ConnectionResetError:
        pass
    assert got < len(data) and time.monotonic() < deadline, (got, len(data))
    assert b"slow" not in p2.ask("GET_NAMES").split()
    for p in (slow, fast, p1, p2):
        p.close()


def check_exit(srv):
    a, b = srv.peer(), srv.peer()
    # the previous check's alice and bob have just closed: their release may still be under way
    poll(lambda: a.expect("NAME alice", "HELLO alice"))
    poll(lambda: b.expect("NAME bob", "HELLO bob"))
    a.send("EXIT")
    assert a.recv() == b"BYE"
    a.expect_eof()
    b.expect("GET_NAMES", "NAMES bob")  # released at once
    b.expect_error("MSG alice hi")
    c = srv.peer()
    c.expect("NAME alice", "HELLO alice")
    c.close()  # vanishes without EXIT
    poll(lambda: b.expect("GET_NAMES", "NAMES bob"))
    d = srv.peer()
    d.expect("NAME dave", "HELLO dave")
    d.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    d.send(b"0005he", raw=True)
    d.close()  # reset
    poll(lambda: b.expect("GET_NAMES", "NAMES bob"))
    b.expect("NAME dave", "HELLO dave")
    e = srv.peer()
    e.sock.sendall(b"0004EXIT0009GET_NAMES")  # commands after EXIT are ignored
    assert e.recv() == b"BYE"
    e.expect_eof()
    b.expect("EXIT", "BYE")
    b.expect_eof()


# ---------------------------------------------------------------- client checks

class ClientProc:
    def __init__(self, impl, stage, port):
        path = os.path.join(HERE, impl, stage, "chat_client.py")
        self.proc = spawn(path, port, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = Lines(self.proc.stdout)
        self.err = Lines(self.proc.stderr)

    def line(self, text):
        self.proc.stdin.write(text.encode("utf-8") if isinstance(text, str) else text)
        self.proc.stdin.flush()

    def expect(self, want, timeout=3.0):
        got = self.out.get(timeout)
        want = want.encode("utf-8") + b"\n"
        assert got == want, "client printed %r, want %r (stderr %r)" % (got, want, self.err.text())

    def quiet(self, timeout=0.3):
        got = self.out.get(timeout)
        assert got is None, "unexpected output %r" % got

    def eof_and_wait(self, want_code, timeout=8.0):
        self.proc.stdin.close()
        return self.wait(want_code, timeout)

    def wait(self, want_code, timeout=8.0):
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("client did not exit")
        time.sleep(0.1)
        err = self.err.text()
        assert code == want_code, "exit status %r, want %r (stderr %r)" % (code, want_code, err)
        assert "Traceback" not in err, err
        return err


def check_client(impl, stage, srv):
    c = ClientProc(impl, stage, srv.port)
    if srv.echo:
        c.line("hello\n")
        c.expect("hello")
        c.line("\n")
        c.line("x" * 1025 + "\n")
        c.line("h\u00e9llo  \r\n")
        c.expect("h\u00e9llo  ")
        c.quiet()
        assert "1025" in c.err.text() or "error" in c.err.text().lower(), c.err.text()
        c.line("x" * 1024 + "\n")
        c.expect("x" * 1024)
    else:
        c.line("NAME cli\n")
        c.expect("HELLO cli")
        c.line("GET_NAMES\n")
        c.expect("NAMES cli")
        c.line("\xe9" * 1030 + "\n")  # 2060 bytes: refused
        c.line("bogus\n")
        got = c.out.get(3.0)
        assert got and got.startswith(b"ERROR"), got
        assert "error" in c.err.text().lower(), c.err.text()
    if srv.stage >= 3:
        p = srv.peer()
        p.expect("NAME peer", "HELLO peer")
        time.sleep(0.3)
        p.expect("MSG cli  spaced  out ", "SENT cli")  # arrives while the client waits for input
        c.expect("FROM peer  spaced  out ")
        c.line("MSG peer yo\n")
        c.expect("SENT peer")
        assert p.recv() == b"FROM cli yo"
        p.close()
    if srv.stage < 4:
        c.eof_and_wait(0)
        return
    c.line("EXIT\n")
    c.expect("BYE")
    c.wait(0)
    # end of input sends EXIT too; the name is released
    c2 = ClientProc(impl, stage, srv.port)
    c2.line("NAME leaver\n")
    c2.expect("HELLO leaver")
    c2.eof_and_wait(0)
    q = srv.peer()
    q.expect("GET_NAMES", "NAMES")
    q.close()
    # the server goes away: message, status 1
    c3 = ClientProc(impl, stage, srv.port)
    c3.line("NAME stay\n")
    c3.expect("HELLO stay")
    srv.stop()
    err = c3.wait(1)
    assert "closed" in err.lower(), err


def check_client_server_gone(impl, stage, srv):
    c = ClientProc(impl, stage, srv.port)
    c.line("GET_NAMES\n" if not srv.echo else "x\n")
    assert c.out.get(3.0) is not None
    srv.stop()
    err = c.wait(1)
    assert "closed" in err.lower(), err


# ---------------------------------------------------------------- main

def check_stage(impl, stage):
    n = int(stage[0])

    def fresh():
        srv = Server(impl, stage)
        srv.stage, srv.echo = n, n == 1
        return srv

    srv = fresh()
    label = "%s %s " % (impl, stage)
    if n == 1:
        run(label + "echo", check_echo, srv)
    else:
        run(label + "naming", check_naming, srv)
    if n >= 3:
        run(label + "messaging", check_messaging, srv)
    if n >= 4:
        run(label + "exit and release", check_exit, srv)
    run(label + "framing errors", check_framing_errors, srv)
    run(label + "50 concurrent clients", check_concurrent, srv)
    run(label + "client flooding without reading", check_flood_own, srv)
    if n >= 3:
        run(label + "slow reader, 8 MB", check_slow_reader, srv)
    run(label + "still serving after all that", check_concurrent, srv, 5, "again")
    run(label + "SIGINT: exit 0, no traceback, port free", srv.stop)
    srv = fresh()
    run(label + "client via stdin pipe", check_client, impl, stage, srv)
    if n < 4:
        run(label + "client when the server goes away", check_client_server_gone, impl, stage, srv)
    if srv.proc.poll() is None:
        srv.proc.send_signal(signal.SIGINT)


def main():
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # children must not inherit "ignore"
    impls = sys.argv[1:] or IMPLS
    stages = [s for s in STAGES if not os.environ.get("STAGE") or s.startswith(os.environ["STAGE"])]
    try:
        for impl in impls:
            for stage in stages:
                check_stage(impl, stage)
    finally:
        kill_all()
    print("%d failure(s)" % len(FAILURES) + ("" if not FAILURES else ": " + ", ".join(FAILURES)))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
