"""Where a program is: asked when a check waits on it in vain, told in the failure.

When a check waits in vain on a program that is still running (nothing within 2 s,
a send that does not finish, a client that prints nothing), the failure says where
the program waits, in the student's own files, and the hint is chosen by the call
it waits in: recv() on a blocking socket, sendall() to a slow reader, input() in
the client, and so on. Check 1.12's failure says where a spinning server spends its
time (`samples`).

How the grader asks, the same way on every system: every program it starts runs
grader/startup/sitecustomize.py first, which starts one thread that connects to
this grading's listener (`Listener`: 127.0.0.1, a port the OS picks; the address
and a token of the program's own come in the environment variable CHATKIT_WHERE),
says "CHATKIT-WHERE <token> <pid>", and sleeps in recv(): it costs no CPU while the
program idles. Asked "where 1 0\\n" (or "where 15 20\\n": 15 looks, 20 ms apart), it
answers one line of JSON: each thread's stack, innermost frame first, each frame
[file, line, function, code, call]. A program that spins still lets that thread
run (Python switches threads every 5 ms).

What a program answers is untrusted: reads and waits are bounded, anything
malformed counts as no answer, and no answer means no location (never an error of
the grader). A program that is not Python, or that exec'd something else, simply
has no location.
"""

from __future__ import annotations

import ast
import json
import os
import re
import secrets
import selectors
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

VARIABLE = "CHATKIT_WHERE"  # what startup/sitecustomize.py reads
HELLO = "CHATKIT-WHERE"
ANSWER_WAIT = 1.0           # how long a program may take to answer "where"
MOST_ANSWER = 1 << 20       # the longest answer read (bytes)
HELLO_WAIT = 5.0            # a connection that has not said who it is by then is closed
MOST_PENDING = 64           # connections not yet identified, at most
MOST_PER_PROGRAM = 8        # connections kept per program (a launcher and its child: 2)
SAMPLES, SAMPLE_PAUSE_MS = 15, 20   # check 1.12: 15 looks at the stack, 20 ms apart
MAYBE_BUSY = 0.05           # a program that used this share of a CPU since it last
                            # answered (or started) is looked at again, BUSY_WINDOW later
BUSY_WINDOW = 0.2           # seconds: the second window, its own, short and recent
BUSY = 0.10                 # a share of a CPU in that window that is running, not waiting
                            # (blocked in a call: 0.3-2.5 %, the answering thread's own;
                            # spinning: 90-100 % on a quiet machine, 32 % seen at load 3-8;
                            # Windows counts CPU time in ticks of 15.6 ms: 7.8 % of a window)
SHOWN_FRAMES = 3            # the student's innermost frames shown
SHOWN_LINES = 4             # the lines shown of where a spinning program spends its time
MOST_WHERE_LINES = 5        # a stuck program's Where: lines (with Expected, Got and Hint,
                            # all fit in the 8 lines 'Fix first' repeats)


# --- the grader's end: one listener per sandbox -------------------------------------

class Listener:
    """Where programs call in (one per Sandbox, opened at its first program). A thread
    of its own accepts connections and reads who each is, bounded; then the
    connection waits, filed under its program, until the grader asks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.by_token: dict[str, list] = {}    # token -> [socket, ...] (its processes)
        self.tokens: dict[object, str] = {}    # program -> its token, until it stops
        self.in_vain = False   # the last question went to a program that gave no answer

    def environment(self, program) -> dict:
        """The environment variable that lets `program` call in ({} if we can't listen)."""
        with self.lock:
            if self.sock is None and not self._open():
                return {}
            token = secrets.token_hex(16)
            self.by_token[token] = []
            self.tokens[program] = token
            host, port = self.sock.getsockname()[:2]
        return {VARIABLE: "%s %d %s" % (host, port, token)}

    def _open(self) -> bool:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sock.listen(64)
        except OSError:
            return False
        self.sock = sock
        threading.Thread(target=self._serve, name="chatkit-whereabouts", daemon=True).start()
        return True

    def _serve(self) -> None:
        # selectors, not select(): the grader may hold sockets numbered past 1024
        waiting = selectors.DefaultSelector()
        waiting.register(self.sock, selectors.EVENT_READ)
        pending: dict[socket.socket, list] = {}   # not yet identified: [since, what it said]
        while True:
            timeout = None if not pending else max(0.0, min(
                since for since, _ in pending.values()) + HELLO_WAIT - time.monotonic())
            for key, _ in waiting.select(timeout):
                sock = key.fileobj
                if sock is self.sock:
                    try:
                        new, _ = self.sock.accept()
                    except OSError:
                        continue
                    if len(pending) >= MOST_PENDING:
                        _close(new)
                        continue
                    new.setblocking(False)
                    pending[new] = [time.monotonic(), b""]
                    waiting.register(new, selectors.EVENT_READ)
                    continue
                try:
                    data = sock.recv(200)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                pending[sock][1] += data
                said = pending[sock][1]
                if data and b"\n" not in said and len(said) < 200:
                    continue
                waiting.unregister(sock)
                del pending[sock]
                if not self._file(sock, said):
                    _close(sock)
            now = time.monotonic()
            for sock, (since, _) in list(pending.items()):
                if now - since > HELLO_WAIT:
                    waiting.unregister(sock)
                    del pending[sock]
                    _close(sock)

    def _file(self, sock: socket.socket, said: bytes) -> bool:
        words = said.split(b"\n", 1)[0].decode("ascii", "replace").split()
        if len(words) != 3 or words[0] != HELLO:
            return False
        with self.lock:
            connections = self.by_token.get(words[1])
            if connections is None or len(connections) >= MOST_PER_PROGRAM:
                return False
            connections.append(sock)
        return True

    def forget(self, program) -> None:
        """The program stopped: close its connections."""
        with self.lock:
            token = self.tokens.pop(program, None)
            connections = self.by_token.pop(token, [])
        for sock in connections:
            _close(sock)

    def ask(self, program, count: int = 1, pause_ms: int = 0,
            wait: float = ANSWER_WAIT) -> list[list]:
        """Ask each process of `program` where it is: [samples of one process, ...], the
        process that called in last first; each sample a list of threads (`Thread`).
        Processes that do not answer in time, or answer garbage, are left out."""
        with self.lock:
            connections = list(self.by_token.get(self.tokens.get(program), []))
        self.in_vain = False
        if not connections:
            return []
        request = b"where %d %d\n" % (count, pause_ms)
        # Twice the pauses: after each one, a program that spins gives its thread the
        # interpreter back only at its next switch (5 ms; Windows' timer makes it up to
        # 15.6 ms, and 3.10's 20 ms sleeps 31 ms). Under Wine a spinning program's 15
        # looks 20 ms apart took 0.45-0.73 s.
        deadline = time.monotonic() + wait + 2 * count * pause_ms / 1000
        answers: dict[socket.socket, bytearray] = {}
        for sock in connections:
            try:
                sock.sendall(request)
                answers[sock] = bytearray()
            except OSError:
                self._drop(program, sock)
        done: dict[socket.socket, bytes] = {}
        try:
            self._read_answers(answers, done, deadline, program)
        except (OSError, ValueError):   # a socket closed under us (the program stopped)
            pass
        for sock in answers:   # no answer in time: a late one would be taken for the next
            self._drop(program, sock)
        found = []
        for sock in reversed(connections):
            samples = parse_answer(done.get(sock))
            if samples:
                found.append(samples)
            elif sock in done:
                self._drop(program, sock)
        self.in_vain = not found
        return found

    def _read_answers(self, answers: dict, done: dict, deadline: float, program) -> None:
        """Read each answer up to its end of line, until `deadline`: into `done`."""
        with selectors.DefaultSelector() as waiting:
            for sock in answers:
                waiting.register(sock, selectors.EVENT_READ)
            while answers and time.monotonic() < deadline:
                for key, _ in waiting.select(max(0.0, deadline - time.monotonic())):
                    sock = key.fileobj
                    try:
                        data = sock.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    got = answers[sock]
                    got += data
                    if data and b"\n" not in got and len(got) <= MOST_ANSWER:
                        continue
                    waiting.unregister(sock)
                    del answers[sock]
                    if b"\n" in got:
                        done[sock] = bytes(got[:got.index(b"\n")])
                    else:
                        self._drop(program, sock)

    def _drop(self, program, sock: socket.socket) -> None:
        with self.lock:
            connections = self.by_token.get(self.tokens.get(program), [])
            if sock in connections:
                connections.remove(sock)
        _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


# --- what a program said: checked, as it is untrusted -------------------------------

@dataclass(frozen=True)
class Frame:
    file: str
    line: int
    function: str
    code: str
    call: str


@dataclass
class Thread:
    main: bool
    frames: list   # [Frame, ...], innermost first


class Looks(list):
    """One process's answer: [[Thread, ...] per look], and `busy`: the share of a CPU it
    used since it last answered (or started), None if it did not say."""
    busy = None


def parse_answer(line: bytes | None) -> Looks:
    """A program's answer as [[Thread, ...] per sample]; [] for anything malformed."""
    if not line:
        return Looks()
    try:
        answer = json.loads(line.decode("utf-8"))
        samples = Looks()
        samples.busy = busy_share(answer.get("clocks"))
        for sample in answer["samples"][:100]:
            threads = []
            for thread in sample[:64]:
                frames = [Frame(_text(f[0], 1000), int(f[1]), _text(f[2]), _text(f[3]),
                                _text(f[4])) for f in thread["frames"][:100]]
                threads.append(Thread(thread["main"] is True, frames))
            samples.append(threads)
        return samples
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, UnicodeDecodeError):
        return Looks()


def busy_share(clocks) -> float | None:
    """The share of a CPU used between two [wall µs, CPU µs] readings; None if they are
    not two such readings, or no time passed between them."""
    try:
        (wall_then, cpu_then), (wall_now, cpu_now) = clocks
        if not all(type(n) is int for n in (wall_then, cpu_then, wall_now, cpu_now)):
            return None
    except (TypeError, ValueError):
        return None
    if wall_now <= wall_then:
        return None
    return max(0, cpu_now - cpu_then) / (wall_now - wall_then)


def _text(value, limit: int = 200) -> str:
    """A string from a program, fit to print: no control characters, bounded."""
    if not isinstance(value, str):
        raise TypeError("not a string")
    return "".join(c if c.isprintable() else "?" for c in value[:limit])


# --- which files are the student's ----------------------------------------------------

class Files:
    """The implementation's files, as the student knows them. The grader starts
    <folder>/<stage>/chat_server.py (the folder it grades, or a copy of it made for
    the programs' own user, with the same name): files under that folder are the
    student's, and are shown as '<folder name>/<stage>/<file>', whichever it ran."""

    def __init__(self, program) -> None:
        script = next((arg for arg in program.argv[1:] if arg.endswith(".py")), None)
        self.root = os.path.normcase(os.path.abspath(Path(script).parent.parent)) \
            if script else None

    def own(self, path: str) -> bool:
        if self.root is None or path.startswith("<"):   # '<frozen runpy>', '<string>'
            return False
        path = os.path.normcase(os.path.abspath(path))
        return (path.startswith(self.root + os.sep)
                and "site-packages" not in Path(path).parts)

    def shown(self, path: str) -> str:
        """'stages/1_echo/chat_server.py' for a student's file; a name alone for others."""
        if self.own(path):
            within = os.path.relpath(os.path.abspath(path), os.path.dirname(self.root))
            return Path(within).as_posix()
        return Path(path.replace("\\", "/")).name


def own_frames(thread: Thread, files: Files) -> list[Frame]:
    return [frame for frame in thread.frames if files.own(frame.file)]


# --- the call a program waits in, and the hint for it -----------------------------------

# The calls a hint is written for, by how a line names them. A line naming several
# is read by the first of this list it names (Python 3.11 and later tell the very
# call, as 'call'; 3.10 gives the line alone).
CALLS = [
    ("recv", r"recv|recv_into|recvfrom|recvmsg"),
    ("sendall", r"sendall"),
    ("send", r"send|sendto|sendmsg"),
    ("accept", r"accept"),
    ("input", r"input"),
    ("readline", r"readline|readlines"),
    ("read", r"read"),
    ("sleep", r"sleep"),
    ("select", r"select|poll|epoll|kqueue|control|run_forever|run_until_complete"),
    ("connect", r"connect|create_connection"),
    ("join", r"join"),
    ("wait", r"wait|acquire|get"),
]


def call_of(frame: Frame) -> str | None:
    """The call the student's frame waits in ('recv', 'select', ...), or None."""
    if frame.call:
        called = re.match(r"\s*(?:await\s+)?([\w.]+)\s*\(", frame.call)
        if called:
            name = called.group(1).rsplit(".", 1)[-1]
            for call, names in CALLS:
                if re.fullmatch(names, name):
                    return call
            if not re.search(r"\b(iter|list|next)\b", name):
                return None
    code = frame.code.split("#", 1)[0]
    if re.search(r"\bin\s+sys\.stdin\b", code):   # for line in sys.stdin: ...
        return "readline"
    for call, names in CALLS:   # 'name(', or a method named: 'iter(stdin.readline, b"")'
        if re.search(r"\b(?:%s)\s*\(|\.(?:%s)\s*[,)]" % (names, names), code):
            return call
    return None


def zero_timeout(file: str, code: str) -> bool:
    """Is the line's code a select() whose timeout is 0 (or less): a literal, or a name
    the student's file sets to one at its top ('SELECT_TIMEOUT = 0')? Such a select()
    never waits. False when it can't be told."""
    call = None
    for text in (code.strip(), code.strip() + " pass"):   # 'for key, ev in sel.select(0):'
        try:
            call = ast.parse(text)
            break
        except SyntaxError:
            continue
    if call is None:
        return False
    timeouts = []
    for node in ast.walk(call):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else \
            getattr(node.func, "id", "")
        if name not in ("select", "poll"):
            continue
        timeouts += [k.value for k in node.keywords if k.arg == "timeout"]
        module_select = isinstance(node.func, ast.Attribute) and \
            getattr(node.func.value, "id", "") == "select" or isinstance(node.func, ast.Name)
        if module_select and len(node.args) >= 4:    # select.select(r, w, x, timeout)
            timeouts.append(node.args[3])
        elif not module_select and node.args:        # selector.select(timeout)
            timeouts.append(node.args[0])
    for timeout in timeouts:
        if isinstance(timeout, ast.Name):
            timeout = module_constant(file, timeout.id)
        if isinstance(timeout, ast.UnaryOp) and isinstance(timeout.op, ast.USub):
            return True
        if isinstance(timeout, ast.Constant) and isinstance(timeout.value, (int, float)) \
                and not isinstance(timeout.value, bool) and timeout.value <= 0:
            return True
    return False


def module_constant(file: str, name: str):
    """The value node last assigned to `name` at the top of the student's file, or None."""
    try:
        if os.path.getsize(file) > 1_000_000:
            return None
        with open(file, encoding="utf-8", errors="replace") as source:
            tree = ast.parse(source.read())
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    value = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name
                                                for t in node.targets):
            value = node.value
        elif isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == name:
            value = node.value
    return value


HINT_ZERO_TIMEOUT = ("this select() has a timeout of 0, so it never waits: it returns at "
                     "once, with nothing ready, and the loop asks again and again, using a "
                     "whole CPU. Give select() a timeout above 0 (the skeleton's 1.0 "
                     "second), or None to wait until a socket is ready "
                     "(docs/students.md § Stage 1).")


def spin_hint(frame: Frame, files: Files) -> str | None:
    """The hint for a program found spinning at `frame`, when its code tells the cause."""
    if files.own(frame.file) and call_of(frame) == "select" and \
            zero_timeout(frame.file, frame.code):
        return HINT_ZERO_TIMEOUT
    return None


def in_a_loop_without_select(frame: Frame, files: Files) -> bool:
    """Is the frame's line inside a loop (in its own function) that does not go back to
    select()? Read from the student's file; False when it can't be told."""
    try:
        if os.path.getsize(frame.file) > 1_000_000:
            return False
        with open(frame.file, encoding="utf-8", errors="replace") as source:
            tree = ast.parse(source.read())
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    found = []

    def visit(node, loops):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, [])
                continue
            inner = loops + [child] if isinstance(child, (ast.While, ast.For)) else loops
            if getattr(child, "lineno", None) == frame.line and inner and \
                    isinstance(child, ast.stmt):
                found.append(inner[-1])
            visit(child, inner)

    try:
        visit(tree, [])
    except RecursionError:
        return False
    if not found:
        return False
    loop = found[0]
    return not any(isinstance(node, ast.Attribute) and node.attr in ("select", "poll")
                   or isinstance(node, ast.Name) and node.id in ("select", "poll")
                   for node in ast.walk(loop))


def hint_for(label: str, call: str | None, frame: Frame, files: Files,
             threads: int) -> str | None:
    """The hint for a program of `label` waiting in `call`; None: keep the check's."""
    if threads > 1 or call is None:
        return None   # several threads of its own: one of them waiting is no news
    typing = call == "input" or call in ("readline", "read") and "stdin" in frame.code
    if label == "server":
        if call == "recv" and in_a_loop_without_select(frame, files):
            return ("the server loops on recv() until it has the bytes it wants, so it waits "
                    "there for a client that sent only part of a message (or nothing more), "
                    "and serves nobody meanwhile. Never wait for bytes inside the select "
                    "loop: call recv() once for a socket select() reported readable, keep "
                    "what came in that client's buffer, go back to select(), and take a "
                    "message out only when it is whole (docs/students.md § Framing).")
        if call == "recv":
            return ("recv() on a blocking socket waits until the client sends something, "
                    "and meanwhile the server serves nobody. Make every client socket "
                    "non-blocking (setblocking(False) right after accept()), and call "
                    "recv() only for a socket select() reported readable "
                    "(docs/students.md § Stage 1).")
        if call in ("send", "sendall"):
            return ("%s() waits while the client is not reading: its socket's buffer is "
                    "full, and every other client waits too. Never wait for a client: queue "
                    "what is to be sent, send() only what the socket takes now, keep the "
                    "rest, and ask select() to report the socket writable to send more "
                    "(docs/students.md § Stage 3)." % call)
        if call == "accept":
            return ("accept() waits for a new client to connect. Call it only when select() "
                    "reports the listening socket readable, and then go back to select() "
                    "(docs/students.md § Stage 1).")
        if typing:
            return ("the server waits for a line on its standard input, which nobody types: "
                    "a server reads only from its sockets, all of them through select().")
        if call in ("readline", "read"):
            return ("%s() on a socket's file (makefile()) waits until the client sends "
                    "all it asks for, and meanwhile the server serves nobody. Read with "
                    "recv(), once for a socket select() reported readable, and keep what "
                    "came in that client's buffer (docs/students.md § Framing)." % call)
        return None   # select(): idle, as a server should be; sleep(): the check's hint holds
    if typing:
        return ("the client waits for a line you type, so it does not read the socket "
                "meanwhile: a message that arrives while you type nothing is not shown. "
                "Read standard input in a thread of its own, and the socket in the other "
                "(docs/students.md § The client).")
    if call == "recv":
        return ("the client waits in recv() for the server, so it does not read what you "
                "type meanwhile. Read standard input in a thread of its own, and the socket "
                "in the other (docs/students.md § The client).")
    return None


# --- the words ----------------------------------------------------------------

IDLE_SERVER = ("          (idle: waiting for the next event, as a server should between "
               "messages; it is not stuck in a call)")
IDLE_CLIENT = "          (waiting for the next event: not stuck in a call)"


HINT_BUSY = {
    "server": ("your server runs all the time instead of waiting in select(): a loop that "
               "never waits, or select() returning at once again and again because a socket "
               "it watches is always ready: a departed client's socket left in the read set "
               "(recv() returned b'' and the client was not removed), or every client in the "
               "write set (watch a socket for writing only while its queue holds bytes) "
               "(docs/students.md § Stage 1)."),
    "client": ("your client runs all the time instead of waiting: a loop that never waits "
               "(polling the socket or standard input again and again), or one that goes on "
               "after recv() returned b'' (the server closed the connection: end the "
               "client) (docs/students.md § The client)."),
}


def idle(found) -> bool:
    """Whether a look (describe_stack's lines) found the program idle in select()."""
    return found is not None and (IDLE_SERVER in found[0] or IDLE_CLIENT in found[0])


def where(conversation, hint):
    """(the lines that say where the program waited on in vain is, the hint to give).

    `conversation.waited_on` names the program a check waited on in vain ('server',
    'client'), set where the wait ended; nothing is asked otherwise."""
    seen = getattr(conversation, "seen_before_stop", None)
    if seen is not None:   # asked before the grader stopped it (look_before_stop)
        lines, better = seen
        return lines, better or hint
    label = getattr(conversation, "waited_on", None)
    program = conversation.program(label) if label else None
    found = look_at(label, program)
    if found is None:
        return [], hint
    lines, better = found
    return lines, better or hint


def look_at(label, program):
    """(lines, hint or None) saying where a running program is, or None if it has
    ended, can't be asked, or is nowhere in the student's files."""
    if program is None or program.exit_status() is not None:
        return None
    listener = getattr(program.sandbox, "whereabouts", None)
    if listener is None:
        return None
    files = Files(program)
    answers = listener.ask(program)
    # Waiting in a call and running past it look alike in one look: the CPU time tells.
    # A program that used some since it last answered is asked again after a short
    # window of its own, so that what counts is what it does now.
    recent = any(looks.busy is not None and looks.busy >= MAYBE_BUSY for looks in answers)
    if recent:
        time.sleep(BUSY_WINDOW)   # a measuring window, not a wait for an event
        answers = listener.ask(program)
    for looks in answers:
        running = recent and looks.busy is not None and looks.busy >= BUSY
        found = describe_stack(label, looks[0], files, looks.busy if running else None)
        if found is not None:
            return found
    return None


def look_before_stop(conversation) -> None:
    """A check out of time is about to have its programs stopped, and a stopped program
    can't be asked: ask now where they are (the server first, then the client) and
    keep the first answer for the failure text."""
    for label in ("server", "client"):
        found = look_at(label, conversation.program(label))
        if found is not None:
            conversation.seen_before_stop = found
            return


def describe_stack(label: str, threads: list[Thread], files: Files, busy: float | None = None):
    """(lines, hint or None) for one look at a program; None if no frame is its own.
    `busy`: the share of a CPU it was found using, if it is running, not waiting."""
    mine = [(thread, own_frames(thread, files)) for thread in threads]
    mine = [(thread, frames) for thread, frames in mine if frames]
    if not mine:
        return None
    mine.sort(key=lambda pair: not pair[0].main)   # the main thread leads
    thread, frames = mine[0]
    innermost = frames[0]
    call = call_of(innermost)
    if busy is not None:
        lines = ["Where:    the %s is not waiting but running (%.0f%% of a CPU for %.1f s), "
                 "here %s:" % (label, 100 * busy, BUSY_WINDOW, at(innermost, files, call, busy))]
    else:
        lines = ["Where:    the %s is %s:" % (label, at(innermost, files, call))]
    lines.append("              %s" % innermost.code)
    if call == "select" and len(mine) == 1 and busy is None:
        lines.append(IDLE_SERVER if label == "server" else IDLE_CLIENT)
    for other, other_frames in mine[1:]:   # other threads first: callers matter less
        lines.append("          another thread is %s: %s" % (
            at(other_frames[0], files, call_of(other_frames[0])), other_frames[0].code))
    for caller in frames[1:SHOWN_FRAMES]:
        lines.append("          called from %s() at line %d of %s" % (
            caller.function, caller.line, files.shown(caller.file)))
    hint = (spin_hint(innermost, files) or HINT_BUSY[label]) if busy is not None else \
        hint_for(label, call, innermost, files, len(mine))
    return lines[:MOST_WHERE_LINES], hint


def at(frame: Frame, files: Files, call: str | None, busy: float | None = None) -> str:
    place = "in %s() at %s line %d" % (frame.function, files.shown(frame.file), frame.line)
    if not call:
        return place
    return "%s, calling %s()" % (place, call) if busy is not None else \
        "waiting in %s(), %s" % (call, place)


NO_ANSWER = "Where:    the server gave no answer when the grader asked where it was (%.1f s)"


def samples(program, conversation=None) -> list[str]:
    """Where a spinning program spends its time: SAMPLES looks at its stack, the
    student's lines first, each with how many looks found it there. NO_ANSWER if it
    was asked and gave none in time; [] if it can't be asked."""
    listener = getattr(program.sandbox, "whereabouts", None)
    if listener is None or program.exit_status() is not None:
        return []
    files = Files(program)
    counts: Counter = Counter()
    processes = listener.ask(program, SAMPLES, SAMPLE_PAUSE_MS)
    for process in processes:
        for threads in process:
            for thread in threads:
                if not thread.frames:
                    continue
                own = own_frames(thread, files)
                counts[own[0] if own else thread.frames[0]] += 1
    if not counts:   # asked in vain: say so (a program that never called in: nothing)
        return [NO_ANSWER % (ANSWER_WAIT + 2 * SAMPLES * SAMPLE_PAUSE_MS / 1000)] \
            if listener.in_vain else []
    ranked = sorted(counts.items(), key=lambda item: (not files.own(item[0].file), -item[1],
                                                      item[0].file, item[0].line))
    if conversation is not None:   # the cause, when the line where it spins most tells it
        conversation.spin_hint = spin_hint(ranked[0][0], files)
    looks = max(len(process) for process in processes)
    lines = ["Where:    where the server was at %d looks, %d ms apart%s:" % (
        looks, SAMPLE_PAUSE_MS, "" if len(processes) == 1 else
        " (at each of its %d processes)" % len(processes))]
    for frame, count in ranked[:SHOWN_LINES]:
        call = call_of(frame)
        lines.append("          %2d × in %s() at %s line %d%s: %s" % (
            count, frame.function, files.shown(frame.file), frame.line,
            ", in %s()" % call if call else "", frame.code))
    return lines
