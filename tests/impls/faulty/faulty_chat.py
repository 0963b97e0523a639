"""A chat server and client for all four stages, with switchable student mistakes.

The kit's planted-bug corpus (tests/test_mutants.py) runs the real grader on
this implementation once per mistake, to prove the grader catches it. With no
fault selected this is a correct implementation of every stage (docs/students.md § The protocol): a
select-based server and a client whose stdin is read by a thread of its own.

The mistake is chosen by the environment variable CHATKIT_FAULT (the grader
passes its environment on to the programs it starts). Each mistake is one
`if FAULT == "..."`, placed where a student would make it. The catalog of
mistakes, with what each one breaks, is in tests/test_mutants.py.

Written independently of the kit's protocol.py, on purpose.
"""

import argparse
import os
import queue
import select
import socket
import sys
import threading
import time

FAULT = os.environ.get("CHATKIT_FAULT", "")

HEADER = 4
MAX_MSG = 1024
MAX_NAME = 16
MAX_BACKLOG = 1024 * 1024
PORT = 7777
# The word every error reply starts with (the error_misspelt mistake types it wrong).
ERROR = "EROR" if FAULT == "error_misspelt" else "ERROR"


def frame(payload: bytes) -> bytes:
    if FAULT == "overlong_push_crash" and len(payload) > MAX_MSG:   # as protocol.frame() does
        raise ValueError("a payload is at most %d bytes; this one is %d" % (MAX_MSG, len(payload)))
    size = len(payload)
    if FAULT == "length_in_chars":
        size = len(payload.decode("utf-8", "replace"))     # counts characters
    return b"%04d" % size + payload


def parse_args(host: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default=host)
    parser.add_argument("--port", type=int, default=PORT)
    return parser.parse_args()


# ============================================================== the server

class Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.out: list[bytes] = []     # framed messages not yet (fully) written
        self.pending = 0               # bytes in self.out
        self.name: str | None = None
        self.closing = False           # close once self.out is written
        self.keep_name = False


class Server:
    def __init__(self, stage: int, listener: socket.socket) -> None:
        self.stage = stage
        self.listener = listener
        self.conns: dict[socket.socket, Conn] = {}
        self.names: dict[str, Conn] = {}
        self.last_accepted: Conn | None = None
        self.accepted_any = False
        self.got_message = False
        self.exit_seen = False

    # --- the loop -------------------------------------------------------------
    def run(self) -> None:
        while True:
            readers = [c.sock for c in self.conns.values() if not c.closing]
            listening = True
            if FAULT == "only_first_client" and self.accepted_any:
                listening = False       # accept() was called once, before the loop
            if FAULT == "no_accept_after_first_message" and self.got_message:
                listening = False       # the read list was rebuilt without the listener
            if listening:
                readers.append(self.listener)
            writers = [c.sock for c in self.conns.values() if c.out]
            if FAULT == "always_in_write_set":
                writers = [c.sock for c in self.conns.values()]   # "so we never miss a chance"
            # select_timeout_zero: "so the loop never waits" (it spins at full CPU)
            timeout = 0 if FAULT == "select_timeout_zero" else 1.0
            readable, writable, _ = select.select(readers, writers, [], timeout)
            for sock in readable:
                if sock is self.listener:
                    self.accept()
                elif sock in self.conns:
                    self.read(self.conns[sock])
            for sock in writable:
                if sock in self.conns:
                    self.write(self.conns[sock])
            for conn in list(self.conns.values()):
                if conn.closing and not conn.out:
                    self.drop(conn, release=not conn.keep_name)
            if FAULT == "exit_when_last_leaves" and self.accepted_any and not self.conns:
                return
            if FAULT == "exit_on_exit" and self.exit_seen and not any(
                    c.out for c in self.conns.values()):
                return                  # "EXIT: we are done" (BYE sent first)

    def accept(self) -> None:
        sock, _ = self.listener.accept()
        if FAULT != "blocking_client_sockets":   # that mistake leaves the socket blocking
            sock.setblocking(False)
        conn = Conn(sock)
        self.conns[sock] = conn
        self.last_accepted = conn
        self.accepted_any = True

    def drop(self, conn: Conn, release: bool = True) -> None:
        self.conns.pop(conn.sock, None)
        if release and conn.name is not None and self.names.get(conn.name) is conn:
            del self.names[conn.name]
        if FAULT == "blocking_client_sockets":
            self.hang_up(conn)
        try:
            conn.sock.close()
        except OSError:
            pass

    def hang_up(self, conn: Conn) -> None:
        """End our side, and drop what the client sent that we will never handle (as the
        reference does): on a socket left blocking, recv() waits for the client."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.recv(4096)
        except OSError:
            pass

    # --- reading ----------------------------------------------------------------
    def read(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except ConnectionResetError:
            if FAULT == "crash_on_reset":
                raise
            self.forget_name(conn)
            self.drop(conn, release=FAULT != "name_kept_after_reset")
            return
        except OSError:
            self.drop(conn)
            return
        if not data:
            if FAULT == "ignores_eof":
                return                  # the socket stays in the select set, readable for ever
            if FAULT == "closed_left_in_select":
                conn.sock.close()       # ... but it stays in self.conns, so in the select set
                return
            self.forget_name(conn)
            self.drop(conn, release=FAULT != "name_kept_after_close")
            return
        if FAULT == "decode_each_chunk" and self.stage >= 2:
            try:
                data.decode("utf-8")    # "check the text as it comes in"
            except UnicodeDecodeError:
                self.reply(conn, ERROR + " the message is not valid UTF-8")
                return
        if FAULT == "one_recv_one_message":
            self.got_message = True
            self.handle(conn, data[HEADER:])
            return
        conn.inbuf += data
        self.take_messages(conn)

    def forget_name(self, conn: Conn) -> None:
        """The crash_unnamed_leaves mistake: 'del names[conn.name]' for a client that left."""
        if FAULT == "crash_unnamed_leaves" and self.stage >= 2:
            del self.names[conn.name]   # KeyError: None, for a client that never took a name
            conn.name = None

    def bad_header_ahead(self, conn: Conn) -> bool:
        """Is there a bad header anywhere after the whole messages in the buffer?"""
        at = 0
        while len(conn.inbuf) - at >= HEADER:
            header = conn.inbuf[at:at + HEADER]
            if not header.isdigit() or int(header) > MAX_MSG:
                return True
            at += HEADER + int(header)
        return False

    def header_ok(self, header: bytes) -> bool:
        """Four ASCII digits (bytes.isdigit() is ASCII-only). The header_int_lenient mistake
        trusts int(), which also takes b'+012', b' 12 ' and b'1_23'."""
        if FAULT == "header_int_lenient":
            try:
                return int(header) >= 0
            except ValueError:
                return False
        return header.isdigit()

    def take_messages(self, conn: Conn) -> None:
        if FAULT == "bad_header_loses_messages" and self.bad_header_ahead(conn):
            # payloads = decoder.feed(data) raised: the whole messages before it are lost
            self.framing_error(conn, "bad header")
            return
        while conn.sock in self.conns and (not conn.closing or FAULT == "commands_after_exit"):
            if len(conn.inbuf) < HEADER:
                if FAULT == "header_single_recv":
                    conn.inbuf = b""    # header = sock.recv(4): a short read is lost
                return
            header = conn.inbuf[:HEADER]
            if FAULT != "crash_on_bad_header" and not self.header_ok(header):
                self.framing_error(conn, "the header %r is not 4 digits" % header)
                return
            length = int(header)        # int(b"abcd") raises ValueError
            too_long = length >= MAX_MSG if FAULT == "reject_1024" else length > MAX_MSG
            if too_long and FAULT != "no_limit_check":
                self.framing_error(conn, "a payload of %d bytes is over the limit" % length)
                return
            if FAULT == "length_in_chars":
                text = conn.inbuf[HEADER:].decode("utf-8", "ignore")
                if len(text) < length:
                    return
                payload = text[:length].encode("utf-8")
                conn.inbuf = conn.inbuf[HEADER + len(payload):]
                self.got_message = True
                self.handle(conn, payload)
                continue
            end = HEADER + length
            if FAULT == "blocking_payload_recv":
                conn.sock.setblocking(True)
                while len(conn.inbuf) < end:    # wait here for the rest of the payload
                    more = conn.sock.recv(end - len(conn.inbuf))
                    if not more:
                        self.drop(conn)
                        return
                    conn.inbuf += more
                conn.sock.setblocking(False)
            if len(conn.inbuf) < end:
                return
            payload, conn.inbuf = conn.inbuf[HEADER:end], conn.inbuf[end:]
            self.got_message = True
            self.handle(conn, payload)

    def framing_error(self, conn: Conn, reason: str) -> None:
        if FAULT == "no_error_on_bad_header":
            self.drop(conn)
            return
        self.queue(conn, frame((ERROR + " " + reason).encode("utf-8")))
        conn.inbuf = b""
        if FAULT == "error_no_close":
            return
        if FAULT == "close_without_flush":
            self.drop(conn)             # the ERROR is still in the queue
            return
        conn.closing = True

    # --- writing ----------------------------------------------------------------
    def queue(self, conn: Conn, data: bytes) -> None:
        if FAULT == "blocking_sendall":
            conn.sock.setblocking(True)
            conn.sock.sendall(data)
            conn.sock.setblocking(False)
            return
        if FAULT == "remove_while_iterating" and not conn.out and conn.sock in self.conns:
            try:                        # send at once; queue only what the socket did not take
                data = data[conn.sock.send(data):]
            except BlockingIOError:
                pass
            except OSError:
                self.drop(conn)
                return
            if not data:
                return
        conn.out.append(data)
        conn.pending += len(data)
        if self.stage >= 3 and conn.pending > MAX_BACKLOG and FAULT != "no_backlog_limit":
            self.drop(conn, release=FAULT != "backlog_keeps_name")

    def write(self, conn: Conn) -> None:
        if not conn.out:                # (only the always_in_write_set mistake gets here)
            return
        if FAULT == "remove_while_iterating":
            for data in conn.out:       # removing from the list it loops over skips the next
                try:
                    sent = conn.sock.send(data)
                except BlockingIOError:
                    return
                except OSError:
                    self.drop(conn)
                    return
                conn.pending -= sent
                if sent < len(data):
                    conn.out[conn.out.index(data)] = data[sent:]
                    return
                conn.out.remove(data)
            return
        at = -1 if FAULT == "lifo_out_queue" else 0
        try:
            sent = conn.sock.send(conn.out[at])
        except BlockingIOError:
            return
        except OSError:
            self.drop(conn, release=FAULT != "name_kept_after_reset")
            return
        conn.pending -= sent
        if sent < len(conn.out[at]):
            conn.out[at] = conn.out[at][sent:]
        else:
            del conn.out[at]

    def reply(self, conn: Conn, text) -> None:
        if isinstance(text, str):
            text = text.encode("utf-8")
        if FAULT == "wrong_client_reply":
            conn = self.last_accepted   # the `client_socket` left over from accept()
        self.queue(conn, frame(text))

    # --- the commands -------------------------------------------------------------
    def handle(self, conn: Conn, payload: bytes) -> None:
        if self.stage == 1:
            self.reply(conn, payload)
            return
        if FAULT == "echo_in_stage2":
            self.reply(conn, payload)
        if FAULT == "crash_invalid_utf8":
            text = payload.decode("utf-8")
        else:
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                self.reply(conn, ERROR + " the message is not valid UTF-8")
                if FAULT == "invalid_utf8_closes":
                    conn.closing = True
                return
        if FAULT == "crash_empty_payload":
            command = text.split()[0]
            rest = text[len(command) + 1:]
            spaced = " " in text
        else:
            command, space, rest = text.partition(" ")
            spaced = bool(space)
        commands = {"NAME": self.cmd_name, "GET_NAMES": self.cmd_get_names}
        if self.stage >= 3:
            commands["MSG"] = self.cmd_msg
        if self.stage >= 4:
            commands["EXIT"] = self.cmd_exit
        if FAULT == "crash_unknown_command":
            handler = commands[command]
        else:
            handler = commands.get(command)
        if handler is None or (command in ("GET_NAMES", "EXIT") and spaced) or (
                command in ("NAME", "MSG") and not spaced):
            self.reply(conn, ERROR + " unknown command")
            return
        handler(conn, rest, text)

    def valid_name(self, name: str) -> bool:
        size = len(name)
        if FAULT == "name_len_bytes":
            size = len(name.encode("utf-8"))
        if size < 1:
            return False
        if size > MAX_NAME and FAULT != "long_names":
            return False
        if FAULT != "whitespace_names" and any(c.isspace() for c in name):
            return False
        return True

    def cmd_name(self, conn: Conn, name: str, text: str) -> None:
        if FAULT == "name_split_words":
            words = text.split()
            name = words[1] if len(words) > 1 else ""
        checked = conn.name is not None or FAULT != "validates_only_renames"
        if checked and not self.valid_name(name):
            self.reply(conn, ERROR + " invalid name")
            return
        holder = self.names.get(name)
        if FAULT != "duplicate_names" and holder is not None and (
                holder is not conn or FAULT == "own_name_error"):
            word = "error:" if FAULT == "taken_name_lowercase_error" else ERROR
            self.reply(conn, word + " the name %s is taken" % name)
            return
        if conn.name is not None and FAULT != "rename_keeps_old":
            if self.names.get(conn.name) is conn:
                del self.names[conn.name]
        self.names[name] = conn
        conn.name = name
        self.reply(conn, "HELLO " + name)

    def cmd_get_names(self, conn: Conn, rest: str, text: str) -> None:
        names = sorted(self.names)
        if FAULT == "names_unsorted":
            names = list(self.names)
        if FAULT == "names_comma":
            self.reply(conn, "NAMES " + ",".join(names))
        elif FAULT == "names_trailing_space":
            self.reply(conn, "NAMES " + " ".join(names))
        elif FAULT == "names_space_after_each":
            reply = "NAMES "
            for name in names:
                reply += name + " "
            self.reply(conn, reply)
        else:
            self.reply(conn, "".join(["NAMES"] + [" " + n for n in names]))

    def cmd_msg(self, conn: Conn, rest: str, text: str) -> None:
        to, _, body = rest.partition(" ")
        if FAULT == "msg_text_first_word":
            words = text.split()
            body = words[2] if len(words) > 2 else ""
        if FAULT == "text_stripped":
            body = body.strip()
        if conn.name is None and FAULT != "msg_unnamed_allowed":
            self.reply(conn, ERROR + " choose a name first")
            return
        if not body and FAULT != "msg_empty_text_allowed":
            self.reply(conn, ERROR + " no text")
            return
        if to == conn.name and FAULT != "msg_self_allowed":
            word = "Error" if FAULT == "self_message_capitalised_error" else ERROR
            self.reply(conn, word + " you can't send to yourself")
            return
        if FAULT == "crash_unknown_recipient":
            target = self.names[to]
        else:
            target = self.names.get(to)
        if target is None:
            self.reply(conn, ERROR + " no such name: %s" % to)
            return
        push = "FROM %s %s" % (conn.name, body)
        too_long = len(push.encode("utf-8")) > MAX_MSG
        if FAULT == "overlong_push_crash" or FAULT == "overlong_push_sent":
            too_long = False            # forgot: the push is longer than the text
        if too_long:
            self.reply(conn, ERROR + " too long to deliver with your name in front")
            return
        if FAULT == "bob_sent_hi":
            push = "%s sent %s" % (conn.name, body)
        if FAULT == "broadcast":
            for other in list(self.conns.values()):
                if other is not conn:
                    self.queue(other, frame(push.encode("utf-8")))
        else:
            self.queue(target, frame(push.encode("utf-8")))
        if FAULT != "no_sent":
            self.reply(conn, "SENT " + to)

    def cmd_exit(self, conn: Conn, rest: str, text: str) -> None:
        if FAULT == "no_bye":
            self.drop(conn)
            return
        self.reply(conn, "BYE")
        self.exit_seen = True
        if FAULT == "name_kept_after_exit":
            conn.keep_name = True       # forgot: del names[conn.name]
        elif conn.name is not None:
            del self.names[conn.name]
            conn.name = None
        if FAULT == "bye_not_flushed":
            self.drop(conn)
        elif FAULT != "exit_keeps_connection":
            conn.closing = True


def server_main(stage: int) -> int:
    args = parse_args("0.0.0.0")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if os.name != "nt" and FAULT != "no_reuseaddr":
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(64)
    print("Chat server (stage %d) listening on %s:%d" % (stage, args.host, args.port), flush=True)
    server = Server(stage, listener)
    try:
        server.run()
    except KeyboardInterrupt:
        if FAULT == "ctrl_c_traceback":
            raise
    finally:
        for conn in list(server.conns.values()):
            conn.sock.close()
        listener.close()
    return 0


# ============================================================== the client

def read_stdin(lines: queue.Queue, wake: socket.socket) -> None:
    """Thread: every line of standard input (bytes) into `lines`, then None at the end."""
    stdin = sys.stdin.buffer
    while True:
        try:
            line = stdin.readline()
        except (OSError, ValueError):
            line = b""
        lines.put(line or None)
        try:
            wake.send(b"!")
        except OSError:
            return
        if not line:
            return


def show(payload: bytes) -> None:
    if FAULT == "client_prints_bytes_repr":
        print(payload, flush=True)           # prints b'...'
        return
    sys.stdout.buffer.write(payload + b"\n")
    sys.stdout.buffer.flush()


def finish(status: int) -> None:
    """Exit now, even while the stdin thread is blocked in readline()."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def client_frame(line: bytes) -> bytes:
    if FAULT == "client_no_header":
        return line
    if FAULT == "client_header_chars":
        return b"%04d" % len(line.decode("utf-8", "replace")) + line
    return b"%04d" % len(line) + line


def strip_line(raw: bytes) -> bytes:
    if FAULT == "client_sends_newline":
        return raw
    line = raw[:-1] if raw.endswith(b"\n") else raw
    if FAULT != "client_crlf" and line.endswith(b"\r"):
        line = line[:-1]
    return line


def too_long(line: bytes) -> bool:
    if FAULT == "client_long_lines":
        return False
    if FAULT == "client_length_chars":
        return len(line.decode("utf-8", "replace")) > MAX_MSG
    if FAULT == "client_rejects_1024":
        return len(line) >= MAX_MSG
    return len(line) > MAX_MSG


def server_gone() -> None:
    if FAULT == "client_server_close_traceback":
        raise ConnectionError("the server closed the connection")
    sys.stderr.write("The server closed the connection.\n")
    finish(0 if FAULT == "client_server_close_exit_0" else 1)


def lockstep_client(stage: int, sock: socket.socket, buf: bytes = b"") -> None:
    """The client_blocking_input mistake: input, send, wait for one reply, repeat."""
    while True:
        try:
            typed = input()
        except EOFError:
            break
        line = strip_line(typed.encode("utf-8") + b"\n")
        if not line or too_long(line):
            continue
        sock.sendall(client_frame(line))
        while len(buf) < HEADER or len(buf) < HEADER + int(buf[:HEADER]):
            data = sock.recv(65536)
            if not data:
                server_gone()
            buf += data
        end = HEADER + int(buf[:HEADER])
        show(buf[HEADER:end])
        if stage >= 4 and buf[HEADER:end] == b"BYE":
            finish(0)
        buf = buf[end:]
    if stage >= 4:
        sock.sendall(client_frame(b"EXIT"))
    sock.close()
    finish(0)


def peek_then_lockstep(stage: int, sock: socket.socket) -> None:
    """The client_peeks_then_blocks mistake: after connecting, it looks at the socket
    for 0.1 s, then goes on as client_blocking_input does (a fixed short pause before
    the grader's message would let it pass)."""
    buf = b""
    sock.settimeout(0.1)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                server_gone()
            buf += data
    except socket.timeout:
        pass
    sock.settimeout(None)
    lockstep_client(stage, sock, buf)


def run_client(stage: int, sock: socket.socket) -> None:
    if FAULT == "client_blocking_input":
        lockstep_client(stage, sock)
    if FAULT == "client_peeks_then_blocks":
        peek_then_lockstep(stage, sock)
    lines: queue.Queue = queue.Queue()
    wake_r, wake_w = socket.socketpair()
    threading.Thread(target=read_stdin, args=(lines, wake_w), daemon=True).start()
    buf = b""
    bye_deadline = None                 # set once EXIT is sent (stage 4)
    watching = [sock, wake_r]
    while True:
        timeout = None if bye_deadline is None else max(0.0, bye_deadline - time.monotonic())
        readable, _, _ = select.select(watching, [], [], timeout)
        if not readable and bye_deadline is not None:
            sys.stderr.write("No BYE from the server within 5 s.\n")
            finish(0)
        if sock in readable:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                if FAULT == "client_ignores_server_close":
                    watching = [wake_r]
                    continue
                server_gone()
            if FAULT == "client_one_recv_one_message":
                buf = data[HEADER:]
                show(buf)
                continue
            buf += data
            if FAULT == "client_partial_payload":   # payload = sock.recv(length): taken whole
                while len(buf) >= HEADER and buf[:HEADER].isdigit():
                    end = min(len(buf), HEADER + int(buf[:HEADER]))
                    payload, buf = buf[HEADER:end], buf[end:]
                    show(payload)
                    if stage >= 4 and bye_deadline is not None and payload == b"BYE":
                        sock.close()
                        finish(0)
                continue
            while len(buf) >= HEADER and buf[:HEADER].isdigit() and \
                    len(buf) >= HEADER + int(buf[:HEADER]):
                end = HEADER + int(buf[:HEADER])
                payload, buf = buf[HEADER:end], buf[end:]
                show(payload)
                if stage >= 4 and bye_deadline is not None and payload == b"BYE" \
                        and FAULT != "client_bye_exit_1":
                    sock.close()
                    finish(0)
        if wake_r in readable:
            wake_r.recv(4096)
            while not lines.empty():
                raw = lines.get_nowait()
                if bye_deadline is not None:
                    continue                    # leaving: only BYE matters now
                if raw is None:                 # end of input
                    if FAULT == "client_traceback_eof":
                        raise EOFError("EOF when reading a line")
                    if FAULT == "client_hangs_on_eof":
                        continue
                    if stage < 4 or FAULT == "client_eof_no_exit":
                        sock.close()
                        finish(0)
                    raw = b"EXIT\n"
                line = strip_line(raw)
                if not line and FAULT != "client_sends_empty":
                    continue
                if too_long(line):
                    sys.stderr.write("error: line is %d bytes; the limit is %d. Not sent.\n"
                                     % (len(line), MAX_MSG))
                    sys.stderr.flush()
                    continue
                try:
                    sock.sendall(client_frame(line))
                except OSError:
                    server_gone()
                if stage >= 4 and line == b"EXIT":
                    if FAULT == "client_no_wait_bye":
                        sock.close()
                        finish(0)
                    bye_deadline = time.monotonic() + 5.0


def client_main(stage: int) -> int:
    args = parse_args("127.0.0.1")
    try:
        sock = socket.create_connection((args.host, args.port))
    except OSError as error:
        sys.stderr.write("Cannot connect to %s:%d: %s\n" % (args.host, args.port, error))
        return 1
    try:
        run_client(stage, sock)
    except KeyboardInterrupt:
        finish(130)
    return 0
