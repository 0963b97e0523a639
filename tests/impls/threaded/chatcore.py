"""Alternative chat implementation: thread per client (server), two threads (client).

Used only to show that the grader accepts any correct design. Every stage is
implemented here; the per-stage chat_server.py / chat_client.py files are
launchers that call server_main(stage) or client_main(stage).

Server: the main thread accepts; each connection has a reader thread (parses
frames, runs commands) and a writer thread that drains the connection's own
outgoing queue. Shared state (names) is guarded by one lock, which is never
held while writing to a socket, so one slow reader never stalls the others.
"""

import argparse
import collections
import os
import signal
import socket
import sys
import threading
import time

MAX_MSG = 1024
HEADER = 4
MAX_NAME = 16
MAX_BACKLOG = 1024 * 1024  # a client whose unsent output passes this is dropped (stages 3-4)
HIGH_WATER = 256 * 1024  # stop reading a client while its own backlog is above this
DEFAULT_PORT = 7777
DIGITS = frozenset(b"0123456789")


# ---------------------------------------------------------------- framing

def frame(payload):
    if len(payload) > MAX_MSG:
        raise ValueError("payload of %d bytes exceeds %d" % (len(payload), MAX_MSG))
    return b"%04d" % len(payload) + payload


class Deframer:
    """Reassembles payloads from a byte stream."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        """Return (payloads, error): every complete payload, and a reason if a bad header follows."""
        self.buf += data
        out = []
        while True:
            head = bytes(self.buf[:HEADER])
            if any(b not in DIGITS for b in head):
                return out, "header %r is not 4 ASCII digits" % head
            if len(head) < HEADER:
                return out, None
            size = int(head)
            if size > MAX_MSG:
                return out, "length %d exceeds %d" % (size, MAX_MSG)
            if len(self.buf) < HEADER + size:
                return out, None
            out.append(bytes(self.buf[HEADER:HEADER + size]))
            del self.buf[:HEADER + size]


def valid_name(name):
    return 1 <= len(name) <= MAX_NAME and not any(c.isspace() for c in name)


# ---------------------------------------------------------------- server

class Conn:
    def __init__(self, server, sock, addr):
        self.server = server
        self.sock = sock
        self.addr = addr
        self.name = None
        self.cond = threading.Condition()
        self.queue = collections.deque()
        self.backlog = 0  # bytes queued or being written
        self.closing = False  # writer flushes what is queued, then stops
        self.dead = False  # writer stops at once; nothing more is queued
        self.writer_done = threading.Event()

    def enqueue(self, payload):
        """Queue one framed message. Never touches the socket. Returns True if the
        client went over its backlog limit and must be aborted by the caller."""
        data = frame(payload)
        with self.cond:
            if self.closing or self.dead:
                return False
            self.queue.append(data)
            self.backlog += len(data)
            over = self.server.stage >= 3 and self.backlog > MAX_BACKLOG
            if over:
                self.dead = True
                self.queue.clear()
            self.cond.notify_all()
        return over

    def abort(self):
        """Drop the connection now (backlog overflow, server shutdown)."""
        with self.cond:
            self.dead = True
            self.queue.clear()
            self.cond.notify_all()
        self.server.release(self)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def writer(self):
        try:
            while True:
                with self.cond:
                    while not self.queue and not self.closing and not self.dead:
                        self.cond.wait()
                    if self.dead or not self.queue:
                        return
                    data = b"".join(self.queue)
                    self.queue.clear()
                self.sock.sendall(data)  # no lock held here
                with self.cond:
                    self.backlog -= len(data)
                    self.cond.notify_all()
        except OSError:
            with self.cond:
                self.dead = True
                self.cond.notify_all()
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        finally:
            self.writer_done.set()

    def reader(self):
        reason = "reset"
        try:
            reason = self.read_loop()
        except OSError:
            reason = "reset"
        except Exception as exc:  # never let one client take anything else down
            self.server.log("client %s: unexpected %r" % (self.addr, exc))
            reason = "reset"
        finally:
            self.cleanup(reason)

    def read_loop(self):
        deframer = Deframer()
        while True:
            with self.cond:  # backpressure: a client that does not read its replies is not read
                while self.backlog > HIGH_WATER and not self.dead:
                    self.cond.wait(1.0)
                if self.dead:
                    return "reset"
            data = self.sock.recv(65536)
            if not data:
                return "eof"
            payloads, error = deframer.feed(data)
            for payload in payloads:
                if self.server.handle(self, payload) == "exit":
                    return "exit"
            if error is not None:
                self.enqueue(b"ERROR framing: " + error.encode("ascii", "replace"))
                return "framing"

    def cleanup(self, reason):
        self.server.release(self)  # the name is free at once
        if reason in ("exit", "framing", "eof"):
            with self.cond:
                self.closing = True
                self.cond.notify_all()
            flushed = self.writer_done.wait(5.0) and not self.dead
            if flushed and reason != "eof":
                # Half-close, then read until the peer closes (bounded), so that
                # closing never resets the connection before it has read our last reply.
                try:
                    self.sock.shutdown(socket.SHUT_WR)
                    deadline = time.monotonic() + 2.0
                    while True:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self.sock.settimeout(left)
                        if not self.sock.recv(65536):
                            break
                except OSError:
                    pass
        with self.cond:
            self.dead = True
            self.cond.notify_all()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.writer_done.wait(5.0)
        try:
            self.sock.close()
        except OSError:
            pass
        self.server.log("client %s gone (%s)" % (self.addr, reason))


class Server:
    def __init__(self, stage, verbose=False):
        self.stage = stage
        self.verbose = verbose
        self.lock = threading.Lock()
        self.names = {}  # name -> Conn
        self.conns = set()

    def log(self, text):
        if self.verbose:
            print(text, file=sys.stderr, flush=True)

    def release(self, conn):
        with self.lock:
            if conn.name is not None and self.names.get(conn.name) is conn:
                del self.names[conn.name]
            conn.name = None
            self.conns.discard(conn)

    def handle(self, conn, payload):
        """Run one command. Returns "exit" after EXIT."""
        if self.stage == 1:
            if conn.enqueue(payload):
                conn.abort()
            return None
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            if conn.enqueue(b"ERROR payload is not valid UTF-8"):
                conn.abort()
            return None
        result = None
        with self.lock:
            out = self.command(conn, text)
            if out == "exit":
                result = "exit"
                out = [(conn, "BYE")]
            over = [c for c, reply in out if c.enqueue(reply.encode("utf-8"))]
        for c in over:  # outside the lock
            c.abort()
        return result

    def command(self, conn, text):
        """Called with the lock held. Returns [(conn, reply text)] or "exit"."""
        if text == "GET_NAMES":
            reply = " ".join(["NAMES"] + sorted(self.names))
            if len(reply.encode("utf-8")) > MAX_MSG:
                return [(conn, "ERROR the list of names does not fit in one message")]
            return [(conn, reply)]
        if text == "NAME" or text.startswith("NAME "):
            name = text[5:]
            if not valid_name(name):
                return [(conn, "ERROR invalid name: 1 to 16 characters, no whitespace")]
            holder = self.names.get(name)
            if holder is not None and holder is not conn:
                return [(conn, "ERROR name already taken")]
            if conn.name is not None and conn.name != name:
                del self.names[conn.name]
            conn.name = name
            self.names[name] = conn
            return [(conn, "HELLO " + name)]
        if self.stage >= 3 and (text == "MSG" or text.startswith("MSG ")):
            rest = text[4:]
            if " " not in rest:
                if conn.name is None:
                    return [(conn, "ERROR you have no name yet")]
                return [(conn, "ERROR usage: MSG <name> <text>")]
            to, body = rest.split(" ", 1)
            if conn.name is None:
                return [(conn, "ERROR you have no name yet")]
            if body == "":
                return [(conn, "ERROR the message text is empty")]
            if to == conn.name:
                return [(conn, "ERROR you cannot message yourself")]
            target = self.names.get(to)
            if target is None:
                return [(conn, "ERROR no such name")]
            push = "FROM %s %s" % (conn.name, body)
            if len(push.encode("utf-8")) > MAX_MSG:
                return [(conn, "ERROR message too long to deliver")]
            return [(target, push), (conn, "SENT " + to)]
        if self.stage >= 4 and text == "EXIT":
            if conn.name is not None:
                del self.names[conn.name]
                conn.name = None
            return "exit"
        if text == "":
            return [(conn, "ERROR empty command")]
        return [(conn, "ERROR unknown command")]

    def accept_conn(self, sock, addr):
        sock.settimeout(None)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        conn = Conn(self, sock, addr)
        with self.lock:
            self.conns.add(conn)
        self.log("client %s connected" % (addr,))
        threading.Thread(target=conn.writer, daemon=True).start()
        t = threading.Thread(target=conn.reader, daemon=True)
        t.start()
        return t


def parse_args(role):
    p = argparse.ArgumentParser(description="chat %s (threaded alternative)" % role)
    p.add_argument("--host", default="0.0.0.0" if role == "server" else "127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    if role == "server":
        p.add_argument("--verbose", action="store_true")
    return p.parse_args()


def server_main(stage):
    args = parse_args("server")
    server = Server(stage, args.verbose)
    listener = None
    threads = []
    try:
        try:
            family, kind, proto, _, addr = socket.getaddrinfo(
                args.host, args.port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)[0]
            listener = socket.socket(family, kind, proto)
            if os.name != "nt":
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(addr)
            listener.listen(128)
        except OSError as exc:
            print("error: cannot listen on %s:%s: %s" % (args.host, args.port, exc), file=sys.stderr)
            return 1
        listener.settimeout(1.0)  # wake up now and then so Ctrl-C is seen on every OS
        port = listener.getsockname()[1]
        print("Chat server (stage %d) listening on %s:%d" % (stage, args.host, port), flush=True)
        while True:
            try:
                sock, addr = listener.accept()
            except socket.timeout:
                continue
            except OSError as exc:
                server.log("accept failed: %s" % exc)
                time.sleep(0.05)
                continue
            threads = [t for t in threads if t.is_alive()]
            threads.append(server.accept_conn(sock, addr))
    except KeyboardInterrupt:
        pass
    finally:
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except (ValueError, OSError):
            pass
        if listener is not None:
            listener.close()
        with server.lock:
            conns = list(server.conns)
        for conn in conns:
            conn.abort()
        deadline = time.monotonic() + 2.0
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
    return 0


# ---------------------------------------------------------------- client

class Client:
    def __init__(self, stage, sock):
        self.stage = stage
        self.sock = sock
        self.leaving = False  # we are closing on purpose: the end of the stream is expected
        self.bye = False
        self.ended = threading.Event()  # BYE seen or stream ended
        self.report_lock = threading.Lock()
        self.reported = False

    def server_gone(self):
        """The server closed the connection unexpectedly: say so once, exit 1."""
        with self.report_lock:
            if not self.reported:
                self.reported = True
                sys.stderr.write("The server closed the connection.\n")
                sys.stderr.flush()
                hard_exit(1)

    def receiver(self):
        deframer = Deframer()
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                payloads, error = deframer.feed(data)
                for payload in payloads:
                    try:
                        sys.stdout.buffer.write(payload + b"\n")
                        sys.stdout.buffer.flush()
                    except (OSError, ValueError):
                        pass
                    if self.stage >= 4 and payload == b"BYE":
                        self.bye = True
                        self.ended.set()
                if error is not None:
                    sys.stderr.write("error: bad data from the server (%s)\n" % error)
                    break
        except OSError:
            pass
        self.ended.set()
        if not self.leaving:
            self.server_gone()

    def send(self, payload):
        try:
            self.sock.sendall(frame(payload))
        except OSError:
            self.server_gone()

    def finish(self, code):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        hard_exit(code)


def hard_exit(code):
    """Exit now, whatever the other threads are doing (one may be blocked on stdin)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def client_main(stage):
    args = parse_args("client")
    try:
        signal.signal(signal.SIGINT, lambda *_: hard_exit(130))
    except (ValueError, OSError):
        pass
    try:
        sock = socket.create_connection((args.host, args.port), timeout=10)
        sock.settimeout(None)
    except OSError as exc:
        sys.stderr.write("error: cannot connect to %s:%s: %s\n" % (args.host, args.port, exc))
        return 1
    client = Client(stage, sock)
    threading.Thread(target=client.receiver, daemon=True).start()
    stdin = sys.stdin.buffer
    while True:
        try:
            line = stdin.readline()
        except (OSError, ValueError):
            line = b""
        if not line:
            break
        line = line.rstrip(b"\n")
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            continue
        if len(line) > MAX_MSG:
            sys.stderr.write("error: line is %d bytes; the limit is %d. Not sent.\n" % (len(line), MAX_MSG))
            sys.stderr.flush()
            continue
        if stage >= 4 and line == b"EXIT":
            break
        client.send(line)
    # end of input, or EXIT
    if stage < 4:
        client.leaving = True
        client.finish(0)
    client.leaving = True
    client.send(b"EXIT")
    client.ended.wait(5.0)
    if client.bye:
        client.finish(0)
    if client.ended.is_set():  # the stream ended without BYE
        client.server_gone()
    sys.stderr.write("warning: no BYE from the server within 5 s\n")
    client.finish(0)
