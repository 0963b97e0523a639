"""Alternative chat implementation on asyncio (server and client).

Used only to show that the grader accepts any correct design. Every stage is
implemented here; the per-stage chat_server.py / chat_client.py files are
launchers that call server_main(stage) or client_main(stage).

Server: asyncio.start_server; each connection has a reader coroutine (frames
read with StreamReader.readexactly) and a writer task draining the
connection's own queue with write() + drain(). Pushing to another client only
appends to that client's queue, so a slow reader never stalls anyone else;
one whose backlog passes 1 MiB is dropped (stages 3-4).
Client: one event loop; standard input is read by a thread of the default
executor (no select on stdin), the socket by a task.
"""

import argparse
import asyncio
import collections
import os
import signal
import socket
import sys

MAX_MSG = 1024
HEADER = 4
MAX_NAME = 16
MAX_BACKLOG = 1024 * 1024
HIGH_WATER = 256 * 1024  # stop reading a client while its own backlog is above this
DEFAULT_PORT = 7777
DIGITS = frozenset(b"0123456789")


class FramingError(Exception):
    pass


def frame(payload):
    if len(payload) > MAX_MSG:
        raise ValueError("payload of %d bytes exceeds %d" % (len(payload), MAX_MSG))
    return b"%04d" % len(payload) + payload


async def read_frame(reader):
    """One payload, or None at a clean end of stream. FramingError on a bad header;
    asyncio.IncompleteReadError if the stream ends inside a message."""
    try:
        head = await reader.readexactly(HEADER)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    if any(b not in DIGITS for b in head):
        raise FramingError("header %r is not 4 ASCII digits" % head)
    size = int(head)
    if size > MAX_MSG:
        raise FramingError("length %d exceeds %d" % (size, MAX_MSG))
    return await reader.readexactly(size)


def valid_name(name):
    return 1 <= len(name) <= MAX_NAME and not any(c.isspace() for c in name)


def parse_args(role):
    p = argparse.ArgumentParser(description="chat %s (asyncio alternative)" % role)
    p.add_argument("--host", default="0.0.0.0" if role == "server" else "127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    if role == "server":
        p.add_argument("--verbose", action="store_true")
    return p.parse_args()


# ---------------------------------------------------------------- server

class Conn:
    def __init__(self, server, reader, writer):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.name = None
        self.queue = collections.deque()
        self.queued = 0
        self.wakeup = asyncio.Event()  # something to write, or closing
        self.low = asyncio.Event()  # backlog fell back below HIGH_WATER
        self.flushed = asyncio.Event()  # the writer task has ended
        self.closing = False
        self.dead = False

    def backlog(self):
        return self.queued + self.transport.get_write_buffer_size()

    def enqueue(self, payload):
        if self.closing or self.dead:
            return
        data = frame(payload)
        self.queue.append(data)
        self.queued += len(data)
        self.wakeup.set()
        if self.server.stage >= 3 and self.backlog() > MAX_BACKLOG:
            self.abort()

    def abort(self):
        self.dead = True
        self.queue.clear()
        self.queued = 0
        self.server.release(self)
        self.transport.abort()
        self.wakeup.set()
        self.low.set()

    async def write_loop(self):
        try:
            while True:
                while not self.queue:
                    if self.closing or self.dead:
                        return
                    self.wakeup.clear()
                    await self.wakeup.wait()
                if self.dead or self.transport.is_closing():
                    return
                data = b"".join(self.queue)
                self.queue.clear()
                self.queued = 0
                self.writer.write(data)
                await self.writer.drain()
                if self.backlog() <= HIGH_WATER:
                    self.low.set()
        except (ConnectionError, OSError):
            self.dead = True
        finally:
            self.low.set()
            self.flushed.set()

    async def read_loop(self):
        while True:
            if self.backlog() > HIGH_WATER and not self.dead:
                self.low.clear()
                await self.low.wait()
            if self.dead:
                return "reset"
            try:
                payload = await read_frame(self.reader)
            except FramingError as exc:
                self.enqueue(b"ERROR framing: " + str(exc).encode("ascii", "replace"))
                return "framing"
            except asyncio.IncompleteReadError:
                return "eof"
            if payload is None:
                return "eof"
            if self.server.handle(self, payload) == "exit":
                return "exit"

    async def run(self):
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        wtask = asyncio.ensure_future(self.write_loop())
        reason = "reset"
        try:
            reason = await self.read_loop()
        except (ConnectionError, OSError):
            reason = "reset"
        except asyncio.CancelledError:
            reason = "cancelled"
        except Exception as exc:
            self.server.log("unexpected %r" % (exc,))
        try:
            await self.close(reason)
        except (Exception, asyncio.CancelledError):
            self.transport.abort()
        if not wtask.done():
            wtask.cancel()
        try:
            await wtask
        except (Exception, asyncio.CancelledError):
            pass

    async def close(self, reason):
        self.server.release(self)  # the name is free at once
        if reason in ("exit", "framing", "eof") and not self.dead:
            self.closing = True
            self.wakeup.set()
            try:
                await asyncio.wait_for(self.flushed.wait(), 5.0)
                await asyncio.wait_for(self.writer.drain(), 5.0)
            except (asyncio.TimeoutError, ConnectionError, OSError):
                self.dead = True
            if reason != "eof" and not self.dead and not self.transport.is_closing():
                # Half-close, then read until the peer closes (bounded), so that
                # closing never resets the connection before our last reply is read.
                try:
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                    loop = asyncio.get_running_loop()
                    deadline = loop.time() + 2.0
                    while loop.time() < deadline:
                        data = await asyncio.wait_for(self.reader.read(65536), deadline - loop.time())
                        if not data:
                            break
                except (asyncio.TimeoutError, ConnectionError, OSError):
                    pass
        self.dead = True
        self.wakeup.set()
        self.low.set()
        if self.transport.get_write_buffer_size():
            self.transport.abort()
        else:
            self.transport.close()


class Server:
    def __init__(self, stage, verbose=False):
        self.stage = stage
        self.verbose = verbose
        self.names = {}  # name -> Conn
        self.conns = set()
        self.tasks = set()

    def log(self, text):
        if self.verbose:
            print(text, file=sys.stderr, flush=True)

    def release(self, conn):
        if conn.name is not None and self.names.get(conn.name) is conn:
            del self.names[conn.name]
        conn.name = None

    async def client_connected(self, reader, writer):
        conn = Conn(self, reader, writer)
        self.conns.add(conn)
        task = asyncio.current_task()
        self.tasks.add(task)
        self.log("client %s connected" % (writer.get_extra_info("peername"),))
        try:
            await conn.run()
        finally:
            self.conns.discard(conn)
            self.tasks.discard(task)

    def handle(self, conn, payload):
        """Run one command (no await: atomic for the event loop). "exit" after EXIT."""
        if self.stage == 1:
            conn.enqueue(payload)
            return None
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            conn.enqueue(b"ERROR payload is not valid UTF-8")
            return None
        if self.stage >= 4 and text == "EXIT":
            self.release(conn)
            conn.enqueue(b"BYE")
            return "exit"
        for target, reply in self.command(conn, text):
            target.enqueue(reply.encode("utf-8"))
        return None

    def command(self, conn, text):
        if text == "GET_NAMES":
            reply = " ".join(["NAMES"] + sorted(self.names))
            if len(reply.encode("utf-8")) > MAX_MSG:
                return [(conn, "ERROR too many names to list in one message")]
            return [(conn, reply)]
        if text.split(" ", 1)[0] == "NAME":
            name = text[5:]
            if not valid_name(name):
                return [(conn, "ERROR a name is 1 to 16 characters without whitespace")]
            if self.names.get(name, conn) is not conn:
                return [(conn, "ERROR that name is taken")]
            self.release(conn)
            conn.name = name
            self.names[name] = conn
            return [(conn, "HELLO " + name)]
        if self.stage >= 3 and text.split(" ", 1)[0] == "MSG":
            parts = text[4:].split(" ", 1)
            if conn.name is None:
                return [(conn, "ERROR choose a name first")]
            if len(parts) < 2 or not parts[1]:
                return [(conn, "ERROR no text to send")]
            to, body = parts
            if to == conn.name:
                return [(conn, "ERROR that is your own name")]
            target = self.names.get(to)
            if target is None:
                return [(conn, "ERROR nobody has that name")]
            push = "FROM " + conn.name + " " + body
            if len(push.encode("utf-8")) > MAX_MSG:
                return [(conn, "ERROR too long to deliver with the FROM prefix")]
            return [(target, push), (conn, "SENT " + to)]
        return [(conn, "ERROR unknown or empty command")]


async def serve(stage, args):
    server = Server(stage, args.verbose)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    except (NotImplementedError, RuntimeError, ValueError):
        pass  # Windows: Ctrl-C arrives as KeyboardInterrupt instead
    try:
        listener = await asyncio.start_server(
            server.client_connected, args.host, args.port,
            reuse_address=(os.name != "nt"), backlog=128)
    except OSError as exc:
        print("error: cannot listen on %s:%s: %s" % (args.host, args.port, exc), file=sys.stderr)
        return 1
    port = listener.sockets[0].getsockname()[1]
    print("Chat server (stage %d) listening on %s:%d" % (stage, args.host, port), flush=True)
    try:
        await stop.wait()
    finally:
        listener.close()
        for conn in list(server.conns):
            conn.abort()
        tasks = list(server.tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        try:
            await asyncio.wait_for(listener.wait_closed(), 2.0)
        except (asyncio.TimeoutError, Exception):
            pass
    return 0


def server_main(stage):
    args = parse_args("server")
    try:
        return asyncio.run(serve(stage, args))
    except KeyboardInterrupt:
        return 0


# ---------------------------------------------------------------- client

def hard_exit(code):
    """Exit now, even while the executor thread is blocked reading stdin."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


async def client(stage, args):
    loop = asyncio.get_running_loop()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(args.host, args.port), 10.0)
    except (OSError, asyncio.TimeoutError) as exc:
        sys.stderr.write("error: cannot connect to %s:%s: %s\n" % (args.host, args.port, exc or "timed out"))
        return 1
    state = {"leaving": False, "bye": False}
    ended = asyncio.Event()

    def server_gone():
        sys.stderr.write("The server closed the connection.\n")
        hard_exit(1)

    async def receive():
        try:
            while True:
                payload = await read_frame(reader)
                if payload is None:
                    break
                try:
                    sys.stdout.buffer.write(payload + b"\n")
                    sys.stdout.buffer.flush()
                except (OSError, ValueError):
                    pass
                if stage >= 4 and payload == b"BYE":
                    state["bye"] = True
                    ended.set()
        except FramingError as exc:
            sys.stderr.write("error: bad data from the server (%s)\n" % exc)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        ended.set()
        if not state["leaving"]:
            server_gone()

    async def send(payload):
        try:
            writer.write(frame(payload))
            await writer.drain()
        except (ConnectionError, OSError):
            if not state["leaving"]:
                server_gone()

    async def finish(code):
        state["leaving"] = True
        try:
            writer.close()  # sends what is still buffered, then FIN
            await asyncio.wait_for(writer.wait_closed(), 2.0)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            pass
        hard_exit(code)

    rtask = asyncio.ensure_future(receive())
    while True:
        try:
            line = await loop.run_in_executor(None, sys.stdin.buffer.readline)
        except (OSError, ValueError):
            line = b""
        if not line:
            break
        if line.endswith(b"\n"):
            line = line[:-1]
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
        await send(line)
    if stage < 4:
        await finish(0)
    state["leaving"] = True
    await send(b"EXIT")
    try:
        await asyncio.wait_for(ended.wait(), 5.0)
    except asyncio.TimeoutError:
        sys.stderr.write("warning: no BYE from the server within 5 s\n")
        await finish(0)
    if state["bye"]:
        await finish(0)
    server_gone()
    rtask.cancel()


def client_main(stage):
    args = parse_args("client")
    try:
        signal.signal(signal.SIGINT, lambda *_: hard_exit(130))
    except (ValueError, OSError):
        pass
    try:
        code = asyncio.run(client(stage, args))
    except KeyboardInterrupt:
        code = 130
    hard_exit(code if code is not None else 0)
