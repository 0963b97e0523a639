"""The load generator's worker: one process, many clients, one selector.

`python -m grader load` (grader/teach/load.py) starts one or more of these workers;
each owns a share of the clients and runs them all on non-blocking sockets
with one selector, through three phases:

1. connect its clients (a few dozen at a time, so the server's listen backlog
   never overflows) and, in stages 3-4, name them (NAME -> HELLO);
2. tell the parent how many are ready, and wait for its "go";
3. for the given seconds, keep `in_flight` messages going per client, then
   stop sending and wait (bounded) for what is still on its way.

Stage 1: every client sends messages and checks each echo (same bytes, in
order). Stages 3-4: the worker's clients form a ring, each sending `MSG` to the
next one; the recipient checks every `FROM` (right recipient, right sender,
right text, in order per sender) and the sender every `SENT`. Both ends of a
message are in the same process, so the delivery latency is measured on one
clock: from just before the `MSG` is handed to send() to the moment its `FROM`
is read.

Only the standard library, and none of the grader's other modules: a worker
starts in a fraction of a second, and never imports the implementation's
protocol.py (it frames messages itself, like grader/wire.py).
"""

from __future__ import annotations

import array
import collections
import errno
import os
import selectors
import socket
import time
import traceback

from grader.framing import FramingError, frame, take_payloads

try:
    import resource   # POSIX only; imported now, as there may be no file left to open later
except ImportError:
    resource = None

CONNECT_BATCH = 50       # connections being set up at once (listen backlogs are often 128)
CONNECT_TIMEOUT = 10.0   # seconds one connection may take to be accepted
REPLY_TIMEOUT = 5.0      # seconds the server may take to answer NAME
GO_TIMEOUT = 120.0       # seconds a ready worker waits for the parent's "go"
DRAIN_TIMEOUT = 3.0      # seconds, after the run, for the messages still on their way
PROGRESS_EVERY = 0.5     # seconds between two progress reports to the parent
RECV_SIZE = 65536
TEXT = b"load test message"   # what every message says, after its number
EXAMPLES = 5             # how many wrong messages a worker describes
# What a non-blocking connect_ex() returns when all goes well (the last: Windows).
IN_PROGRESS = (0, errno.EINPROGRESS, errno.EWOULDBLOCK, getattr(errno, "WSAEWOULDBLOCK", -1))


def show(data: bytes, limit: int = 60) -> str:
    text = data.decode("utf-8", "backslashreplace")
    return repr(text if len(text) <= limit else text[:limit] + "…")


class Link:
    """The messages one client sends to one recipient (in stage 1: to itself, echoed)."""

    __slots__ = ("sender", "recipient", "next_seq", "pending", "expected_seq", "unacked",
                 "ack", "prefix_out", "prefix_in")

    def __init__(self, sender: "Client", recipient: "Client", echo: bool) -> None:
        self.sender = sender
        self.recipient = recipient
        self.next_seq = 0             # the number of the next message sent
        self.pending = {}             # number -> (the payload the recipient must get, time sent)
        self.expected_seq = 0         # the number the recipient should see next
        self.unacked = 0              # MSG sent whose SENT has not come back yet (stages 3-4)
        if echo:
            self.prefix_out = self.prefix_in = b""
            self.ack = None
        else:
            self.prefix_out = b"MSG " + recipient.name + b" "
            self.prefix_in = b"FROM " + sender.name + b" "
            self.ack = b"SENT " + recipient.name


class Client:
    """One simulated client: its socket, its buffers, its links."""

    __slots__ = ("name", "sock", "inbox", "outbox", "writing", "state", "deadline",
                 "out_link", "in_links", "gone")

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.sock: socket.socket | None = None
        self.inbox = bytearray()      # received bytes not yet a whole message
        self.outbox = bytearray()     # framed bytes not yet sent
        self.writing = False          # is the selector watching for writability?
        self.state = "new"            # new, connecting, naming, ready, refused
        self.deadline = 0.0
        self.out_link: Link | None = None
        self.in_links: dict = {}      # sender name -> Link (stages 3-4)
        self.gone = False             # the connection ended during the run


def open_files_limit() -> str:
    if resource is None:
        return "unknown"
    return str(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


class Worker:
    def __init__(self, conn, spec: dict) -> None:
        self.conn = conn
        self.address = (spec["host"], spec["port"])
        self.echo = spec["echo"]      # the traffic: echoes (stage 1), or MSG between clients
        self.in_flight = spec["in_flight"]
        self.seconds = spec["seconds"]
        self.clients = [Client(name.encode()) for name in spec["names"]]
        self.selector = selectors.DefaultSelector()
        self.refused = collections.Counter()   # reason -> clients
        self.sending = False
        # what the run counts
        self.sent = self.delivered = self.in_window = self.acks = self.wrong = 0
        self.latencies = array.array("d")
        self.examples: list[str] = []
        self.disconnected = collections.Counter()
        self.cpu = self.wall = 0.0
        self.to_send: dict = {}       # clients with bytes queued this round (ordered set)
        self.unstamped: list = []     # (pending, seq) of the messages queued this round

    # --- phase 1: connect and name ------------------------------------------
    def refuse(self, client: Client, reason: str) -> None:
        client.state = "refused"
        self.refused[reason] += 1
        if client.sock is not None:
            self.selector.unregister(client.sock)
            client.sock.close()
            client.sock = None

    def start_connect(self, client: Client) -> bool:
        """Begin one non-blocking connect; False when we can open no more sockets."""
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE):
                return False
            self.refused["cannot create a socket: %s" % error.strerror] += 1
            client.state = "refused"
            return True
        sock.setblocking(False)
        code = sock.connect_ex(self.address)
        if code not in IN_PROGRESS:
            sock.close()
            self.refused[connect_reason(code)] += 1
            client.state = "refused"
            return True
        client.sock = sock
        client.state = "connecting"
        client.deadline = time.monotonic() + CONNECT_TIMEOUT
        self.selector.register(sock, selectors.EVENT_WRITE, client)
        return True

    def connected(self, client: Client) -> None:
        code = client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.refuse(client, connect_reason(code))
            return
        # Our own small writes must go at once: Nagle's algorithm would hold them.
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.selector.modify(client.sock, selectors.EVENT_READ, client)
        if self.echo:
            client.state = "ready"
            return
        client.state = "naming"
        client.deadline = time.monotonic() + REPLY_TIMEOUT
        try:
            client.sock.send(frame(b"NAME " + client.name))   # 15 bytes: fits any buffer
        except OSError as error:
            self.refuse(client, "the connection failed: %s" % error.strerror)

    def named(self, client: Client) -> None:
        try:
            data = client.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError as error:
            self.refuse(client, "the connection failed while naming: %s" % error.strerror)
            return
        if not data:
            self.refuse(client, "the server closed the connection before answering NAME")
            return
        client.inbox += data
        try:
            payloads = take_payloads(client.inbox)
        except FramingError as error:
            self.refuse(client, "the server answered NAME with bytes that are not a message: %s"
                        % show(error.args[0]))
            return
        if not payloads:
            return
        if payloads[0] != b"HELLO " + client.name or len(payloads) > 1:
            self.refuse(client, "the server answered NAME %s with %s" % (
                client.name.decode(), show(payloads[0])))
            return
        client.state = "ready"

    def connect_all(self) -> None:
        waiting = collections.deque(self.clients)
        busy: set = set()   # clients connecting or naming
        out_of_files = False
        give_up = time.monotonic() + connect_phase(len(self.clients))
        while waiting or busy:
            if time.monotonic() > give_up:
                reason = ("not tried: the server had not taken the others within %.0f s"
                          % connect_phase(len(self.clients)))
                for client in list(waiting) + list(busy):
                    self.refuse(client, reason)
                break
            while waiting and len(busy) < CONNECT_BATCH and not out_of_files:
                client = waiting.popleft()
                if not self.start_connect(client):
                    waiting.appendleft(client)
                    out_of_files = True
                elif client.state == "connecting":
                    busy.add(client)
            if out_of_files and waiting:
                reason = ("this tool's open-files limit (%s per process) was reached: "
                          "not the server's doing; raise it (ulimit -n) or use more --workers"
                          % open_files_limit())
                for client in waiting:
                    client.state = "refused"
                    self.refused[reason] += 1
                waiting.clear()
            for key, events in ready(self.selector, timeout=0.1):
                client = key.data
                if client.state == "connecting":
                    self.connected(client)
                elif client.state == "naming":
                    self.named(client)
            now = time.monotonic()
            for client in list(busy):
                if client.state in ("ready", "refused"):
                    busy.discard(client)
                elif now > client.deadline:
                    if client.state == "connecting":
                        self.refuse(client, "the connection was not accepted within %.0f s"
                                    % CONNECT_TIMEOUT)
                    else:
                        self.refuse(client, "no reply to NAME within %.0f s" % REPLY_TIMEOUT)
                    busy.discard(client)

    # --- phase 3: the run ----------------------------------------------------
    def build_links(self) -> None:
        ready = [c for c in self.clients if c.state == "ready"]
        if self.echo:
            for client in ready:
                client.out_link = Link(client, client, True)
            return
        if len(ready) < 2:
            return   # nobody to talk to
        for i, client in enumerate(ready):
            recipient = ready[(i + 1) % len(ready)]
            link = Link(client, recipient, False)
            client.out_link = link
            recipient.in_links[client.name] = link

    def top_up(self, client: Client) -> None:
        """Send the client's next messages, up to `in_flight` on their way."""
        link = client.out_link
        if link is None or client.gone or not self.sending:
            return
        pending = link.pending
        limit = self.in_flight
        if len(pending) >= limit or link.unacked >= limit:
            return
        while len(pending) < limit and link.unacked < limit:
            seq = link.next_seq
            link.next_seq = seq + 1
            text = b"%d %s" % (seq, TEXT)
            client.outbox += frame(link.prefix_out + text)
            pending[seq] = (link.prefix_in + text, 0.0)   # timed in send_round()
            self.unstamped.append((pending, seq))
            if link.ack is not None:
                link.unacked += 1
            self.sent += 1
        self.to_send[client] = None

    def send_round(self) -> None:
        """End of a round of select: one send() per client carries all that the round
        queued for it (a send() per message would cost this tool as much CPU as the
        server). Each message's latency counts from here, just before its send()."""
        now = time.perf_counter()
        for pending, seq in self.unstamped:
            pending[seq] = (pending[seq][0], now)
        self.unstamped.clear()
        for client in self.to_send:
            self.flush(client)
        self.to_send.clear()

    def flush(self, client: Client) -> None:
        if client.gone or not client.outbox:
            return
        try:
            count = client.sock.send(client.outbox)
        except BlockingIOError:
            count = 0
        except OSError as error:
            self.lose(client, "the connection failed: %s" % error.strerror)
            return
        del client.outbox[:count]
        want_write = bool(client.outbox)
        if want_write != client.writing:
            client.writing = want_write
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
            self.selector.modify(client.sock, events, client)

    def lose(self, client: Client, reason: str) -> None:
        """The server ended this client's connection during the run."""
        if client.gone:
            return
        client.gone = True
        self.disconnected[reason] += 1
        self.selector.unregister(client.sock)
        client.sock.close()

    def note_wrong(self, client: Client, what: str) -> None:
        self.wrong += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append("%s: %s" % (client.name.decode(), what))

    def receive(self, client: Client) -> None:
        try:
            data = client.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError as error:
            self.lose(client, "the connection failed: %s" % error.strerror)
            return
        if not data:
            self.lose(client, "the server closed the connection")
            return
        client.inbox += data
        try:
            payloads = take_payloads(client.inbox)
        except FramingError as error:
            self.note_wrong(client, "bytes that are not a message header: %s" % show(error.args[0]))
            self.lose(client, "the server sent bytes that are not a message")
            return
        if self.echo:
            for payload in payloads:
                self.delivery(client, client.out_link, payload, payload)
            return
        for payload in payloads:
            if payload.startswith(b"FROM "):
                sender = payload[5:].split(b" ", 1)[0]
                link = client.in_links.get(sender)
                if link is None:
                    self.note_wrong(client, "a delivery from a client that sent it nothing: %s"
                                    % show(payload))
                else:
                    self.delivery(client, link, payload, payload[len(link.prefix_in):])
            else:
                self.reply(client, payload)

    def delivery(self, client: Client, link: Link | None, payload: bytes, text: bytes) -> None:
        """A message reached `client`: is it the right one, whole and in order?"""
        now = time.perf_counter()
        try:
            seq = int(text.split(b" ", 1)[0])
            expected, sent_at = link.pending.pop(seq)
        except (ValueError, KeyError, AttributeError):
            self.note_wrong(client, "got %s, which was never sent to it (or twice)" % show(payload))
            return
        if payload != expected:
            self.note_wrong(client, "expected %s, got %s" % (show(expected), show(payload)))
        elif seq != link.expected_seq:
            self.note_wrong(client, "got message %d from %s before message %d (out of order)"
                            % (seq, link.sender.name.decode(), link.expected_seq))
        else:
            self.delivered += 1
            if self.sending:
                self.in_window += 1
            self.latencies.append(now - sent_at)
        link.expected_seq = max(link.expected_seq, seq + 1)
        self.top_up(link.sender)

    def reply(self, client: Client, payload: bytes) -> None:
        """A reply to one of `client`'s MSG: it must be SENT <recipient>."""
        link = client.out_link
        if link is None or link.unacked == 0 or payload != link.ack:
            expected = link.ack if link is not None and link.unacked else b"nothing"
            self.note_wrong(client, "expected %s, got %s" % (show(expected), show(payload)))
            return
        link.unacked -= 1
        self.acks += 1
        self.top_up(client)

    def unfinished(self) -> bool:
        return any(c.out_link is not None and not c.out_link.recipient.gone
                   and (c.out_link.pending or c.out_link.unacked)
                   for c in self.clients if not c.gone)

    def run(self) -> None:
        self.build_links()
        self.sending = True
        start = time.monotonic()
        cpu_start = time.process_time()
        stop = start + self.seconds
        next_report = start + PROGRESS_EVERY
        for client in self.clients:
            self.top_up(client)
        self.send_round()
        drain_until = None
        while True:
            now = time.monotonic()
            if self.sending and now >= stop:
                self.sending = False
                self.wall = now - start
                self.cpu = time.process_time() - cpu_start
                drain_until = now + DRAIN_TIMEOUT
            if drain_until is not None and (now >= drain_until or not self.unfinished()):
                break
            if now >= next_report:
                self.conn.send(("progress", self.sent, self.in_window, self.wrong))
                next_report = now + PROGRESS_EVERY
            for key, events in ready(self.selector, timeout=0.05):
                client = key.data
                if client.gone:
                    continue
                if events & selectors.EVENT_READ:
                    self.receive(client)
                if events & selectors.EVENT_WRITE and not client.gone:
                    self.flush(client)
            self.send_round()

    def results(self) -> dict:
        lost_deliveries = lost_replies = 0
        for client in self.clients:
            link = client.out_link
            if link is not None:
                lost_deliveries += len(link.pending)
                lost_replies += link.unacked
        return {
            "connected": sum(c.state == "ready" for c in self.clients),
            "refused": dict(self.refused),
            "sent": self.sent, "delivered": self.delivered, "in_window": self.in_window,
            "acks": self.acks, "wrong": self.wrong,
            "lost_deliveries": lost_deliveries, "lost_replies": lost_replies,
            "latencies": self.latencies.tobytes(), "examples": self.examples,
            "disconnected": dict(self.disconnected), "cpu": self.cpu, "wall": self.wall,
        }

    def close(self) -> None:
        for client in self.clients:
            if client.sock is not None and not client.gone:
                client.sock.close()
        self.selector.close()


def ready(selector, timeout: float) -> list:
    """selector.select(timeout); with no socket left to watch (every client refused or
    gone), only the wait: Windows' select() refuses to watch nothing (WinError 10022)."""
    if not selector.get_map():
        time.sleep(timeout)
        return []
    return selector.select(timeout)


def connect_phase(clients: int) -> float:
    """The most seconds a worker spends connecting and naming its clients."""
    return CONNECT_TIMEOUT + REPLY_TIMEOUT + 0.02 * clients


def connect_reason(code: int) -> str:
    if code in (errno.ECONNREFUSED, getattr(errno, "WSAECONNREFUSED", -1)):
        return "connection refused (nothing listens, or the server's listen backlog is full)"
    if code == errno.EADDRNOTAVAIL:
        return "no free local port left (EADDRNOTAVAIL)"
    return "connect failed: %s" % os.strerror(code)


def worker_main(conn, spec: dict) -> None:
    """The worker process: connect, report, wait for go, run, report. Never hangs."""
    worker = Worker(conn, spec)
    try:
        worker.connect_all()
        conn.send(("ready", sum(c.state == "ready" for c in worker.clients), dict(worker.refused)))
        if not conn.poll(GO_TIMEOUT) or conn.recv() != "go":
            return
        worker.run()
        conn.send(("done", worker.results()))
    except KeyboardInterrupt:
        pass   # Ctrl-C reaches the whole process group: the parent reports it
    except (BrokenPipeError, EOFError):
        pass   # the parent is gone: nobody to report to
    except Exception:
        try:
            conn.send(("error", traceback.format_exc()))
        except OSError:
            pass
    finally:
        worker.close()
