"""Run by Python at the start of every student program the grader starts.

Line endings read from standard input, the same on every system. On Windows,
Python's text-mode standard input turns a typed "\\r\\n" into "\\n"; on Linux and
macOS it leaves "\\r\\n" alone. So a client that strips only "\\n" from a line read
as text is right on Windows and wrong elsewhere, and the grader's verdict would
depend on the system it runs on. Here text-mode standard input reads lines as on
Windows everywhere (universal newlines); sys.stdin.buffer, read as bytes, still
gets exactly the bytes typed, "\\r\\n" included, as on a Windows console.

First of all, the program takes the grader's hard limits on files (no file larger
than the output limit, no core file: CHATKIT_HARD_LIMITS), before any line of its
own runs. The grader cannot always set them from outside: a root without
CAP_SYS_RESOURCE (many containers) may not change another user's limits. A hard
limit, once lowered, cannot be raised again by the program.

Where it is, when the grader asks (grader/whereabouts.py). When a check waits in
vain on a program that is still running, the grader asks it where it is: a thread
started here connects to the grader's listener (address and token in the
environment variable CHATKIT_WHERE), says who it is, and then sleeps in recv(),
using no CPU, until the grader asks; then it answers with every thread's stack
(sys._current_frames()), or a few samples of them, and how much CPU time the
program used since its last answer (busy, or waiting?), and sleeps again. The same way
on every system (no signals: Windows has none to spare). Anything going wrong
here leaves the program alone: it just has no answer.

Where it ends itself. A program that calls sys.exit(), exit(), quit() or
os._exit() with a status other than 0 writes one line on its standard error
first, "[chat kit] sys.exit(1) at FILE line N in FUNCTION(): CODE", so that an
exit with no traceback still names the line that ended it (grader/diagnosis.py
reads it). Nothing else changes: the call then runs as it would have. A
chat_server.py or chat_client.py that writes `raise SystemExit(1)` itself gets
the same line ("[chat kit] raise SystemExit(1) at ..."), written as the
exception leaves the script's own lines.

A server (chat_server.py) that ends by itself writes, as it ends, the line its
loop's function returned from and the last of its own to return ("[chat kit]
it ended after serve_forever() returned at FILE line 225: break, then main()
..."), so that an exit with no traceback and no sys.exit() still names where
its loop was left.

Then any other sitecustomize further along the path runs, as it would have.
"""

import importlib.machinery
import importlib.util
import io
import os
import sys


def take_the_graders_hard_limits():
    try:
        import resource
    except ImportError:
        return   # Windows: a job object holds the program instead
    for item in os.environ.get("CHATKIT_HARD_LIMITS", "").split(","):
        name, _, value = item.partition("=")
        which = getattr(resource, "RLIMIT_" + name.upper(), None)
        if which is None or not value.isdigit():
            continue
        soft, hard = resource.getrlimit(which)
        if hard == resource.RLIM_INFINITY or hard > int(value):
            try:
                resource.setrlimit(which, (int(value), int(value)))   # lowering: always allowed
            except (OSError, ValueError):
                pass


def read_lines_as_windows_does():
    stdin = sys.stdin
    if stdin is None or not isinstance(stdin, io.TextIOWrapper):
        return
    encoding, errors = stdin.encoding, stdin.errors
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(stdin.detach(), encoding=encoding,
                                                 errors=errors, newline=None)


def run_the_next_sitecustomize():
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if p and os.path.abspath(p) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


WHERE = "CHATKIT_WHERE"   # "host port token", set by the grader (whereabouts.py)
STACK_DEPTH = 40          # innermost frames kept per thread
THREADS_KEPT = 16         # threads kept per sample
MOST_SAMPLES = 50


def answer_where_asked():
    """Start the thread that tells the grader where this program is (see above)."""
    try:
        host, port, token = os.environ[WHERE].split()
        import _thread
        _thread.start_new_thread(_where_thread, (host, int(port), token, _thread.get_ident()))
    except Exception:   # no grader asking, or no thread to be had: nothing to answer with
        pass


def _where_thread(host, port, token, main):
    import socket
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.connect((host, port))   # a numeric address: no name lookup (it costs CPU)
        if hasattr(os, "register_at_fork"):   # a forked child does not answer for its parent
            os.register_at_fork(after_in_child=sock.close)
        sock.sendall(("CHATKIT-WHERE %s %d\n" % (token, os.getpid())).encode())
        import time   # built in: no file to read
        last = _clocks(time)   # the window of the first answer starts here
        asked = b""
        while True:
            data = sock.recv(256)
            if not data:
                return
            asked += data
            while b"\n" in asked:
                line, asked = asked.split(b"\n", 1)
                words = line.split()
                count = min(int(words[1]), MOST_SAMPLES) if len(words) > 1 else 1
                pause = min(int(words[2]), 100) / 1000 if len(words) > 2 else 0
                now = _clocks(time)   # how much CPU since the last answer: busy, or waiting?
                clocks, last = [last, now], now
                samples = []
                for number in range(count):
                    if number:
                        time.sleep(pause)
                    try:
                        samples.append(_threads_now(main))
                    except Exception:   # one odd look costs that look, never the thread
                        samples.append([])
                sock.sendall(_json({"pid": os.getpid(), "samples": samples,
                                    "clocks": clocks}).encode(
                    "utf-8", "replace") + b"\n")
    except Exception:
        return


def _clocks(time):
    """[wall clock, this process's CPU time], in microseconds."""
    return [int(time.monotonic() * 1e6), int(time.process_time() * 1e6)]


def _threads_now(main):
    """[{"main": bool, "frames": [[file, line, function, code, call], ... innermost first]}]"""
    import _thread
    me = _thread.get_ident()
    threads = []
    for ident, frame in list(sys._current_frames().items()):
        if ident == me or len(threads) >= THREADS_KEPT:
            continue
        frames = []
        while frame is not None and len(frames) < STACK_DEPTH:
            # Read once: a thread that runs moves on while this one reads the file.
            code, line, last = frame.f_code, frame.f_lineno, frame.f_lasti
            if line is None:   # an instruction the compiler placed on no line: its function's
                line = code.co_firstlineno
            text = _source_line(code.co_filename, line)
            frames.append([os.path.abspath(code.co_filename), line, code.co_name,
                           text.strip()[:200], _call_at(code, line, last, text)])
            frame = frame.f_back
        threads.append({"main": ident == main, "frames": frames})
    return threads


def _call_at(code, line, last, text):
    """The call made at instruction `last` of line `line`, as written ('conn.recv(4)'),
    where Python (3.11 and later) tells which columns it spans; '' elsewhere."""
    try:
        if not hasattr(code, "co_positions"):
            return ""   # Python 3.10: don't import dis for nothing
        import dis
        if not dis.opname[code.co_code[last]].startswith("CALL"):
            return ""
        first, end, start, stop = list(code.co_positions())[last // 2]
        if first != line or end != line or start is None or stop is None:
            return ""
        return text.encode("utf-8")[start:stop].decode("utf-8", "replace")[:200]
    except Exception:
        return ""


# Answering imports nothing that a program may not have loaded already (no json, no
# linecache: they bring re, enum, tokenize). In a program that spins, every file the
# answering thread reads hands the interpreter's lock to the spinning thread, and it
# gets it back only after a switch interval, which Windows stretches to its timer's
# 15.6 ms: under Wine, json and linecache made a spinning server's first answer take
# 1.7-2.3 s, past the grader's wait (Linux, which has loaded re by then: 0.06 s).

_SOURCE = {}          # file -> its lines, read once
MOST_SOURCE = 1 << 20
_ESCAPES = {}         # character -> how JSON writes it, where it must not be itself


def _source_line(path, number):
    """Line `number` of the file, as Python reads source (UTF-8); '' if it can't be."""
    if path not in _SOURCE:
        _SOURCE[path] = []
        if path.startswith("<"):   # '<frozen runpy>', '<string>': no file
            return ""
        try:
            with open(path, "rb") as source:
                text = source.read(MOST_SOURCE).decode("utf-8", "replace")   # built in
            text = text[1:] if text.startswith("\ufeff") else text   # a byte-order mark
            _SOURCE[path] = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        except (OSError, ValueError):
            pass
    lines = _SOURCE[path]
    return lines[number - 1] if 0 < number <= len(lines) else ""


def _json(value):
    """JSON for what an answer holds: dicts, lists, strings, whole numbers, booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if not _ESCAPES:   # control characters, quotes, backslashes, lone surrogates
            _ESCAPES.update((c, "\\u%04x" % c) for c in [*range(32), *range(0xD800, 0xE000)])
            _ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\"})
        return '"%s"' % value.translate(_ESCAPES)
    if isinstance(value, dict):
        return "{%s}" % ", ".join("%s: %s" % (_json(str(key)), _json(item))
                                  for key, item in value.items())
    return "[%s]" % ", ".join(_json(item) for item in value)


EXIT_NOTE = "[chat kit] %s(%s) at %s line %d in %s(): %s\n"
EXITS_TOLD = []   # the exits told with their line: nothing more is said of where it ended


def tell_where_it_exits():
    """Wrap the calls that end a program: a status other than 0 is told with its line."""
    import builtins   # built in: no file to read

    def wrapped(name, real):
        def ending(*args, **kwargs):
            status = args[0] if args else kwargs.get("status", kwargs.get("code"))
            if status is not None and status != 0:
                try:
                    EXITS_TOLD.append(status)
                    caller = sys._getframe(1)
                    path, number = caller.f_code.co_filename, caller.f_lineno or 0
                    sys.stderr.write(EXIT_NOTE % (name, status if isinstance(status, int)
                                                  else "…", path, number,
                                                  caller.f_code.co_name,
                                                  _source_line(path, number).strip()))
                    sys.stderr.flush()
                except Exception:   # no stderr, a frame without a file: the exit goes on
                    pass
            return real(*args, **kwargs)
        return ending

    sys.exit = wrapped("sys.exit", sys.exit)
    os._exit = wrapped("os._exit", os._exit)
    for name in ("exit", "quit"):
        if hasattr(builtins, name):
            setattr(builtins, name, wrapped(name, getattr(builtins, name)))


END_NOTE = "[chat kit] it ended after %s\n"


def tell_where_it_ends():
    """Trace the program's own calls (sys.settrace, with no line events): a chat_server.py
    or chat_client.py that raises SystemExit itself names that line, and a server that
    ends by itself names where its loop was left."""
    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not script.endswith(("chat_server.py", "chat_client.py")):
        return
    root = os.path.dirname(os.path.dirname(script)) + os.sep
    leaving = tell_where_it_raises(script, root)
    returned = tell_where_a_server_ends(root) if script.endswith("chat_server.py") else None
    here = __file__   # this file's own calls (the sys.exit() wrapper) are not the program's
    calls = {}        # id of a running frame of its own -> the calls it has made

    def own(frame, event, arg):   # a function of its own: its return is counted
        returned(frame, event, calls)
        return own

    def called(frame, event, arg):   # every call of a Python function
        code = frame.f_code
        if code.co_filename == here:
            return None
        caller = frame.f_back
        if caller is not None and id(caller) in calls:
            calls[id(caller)] += 1
        if code.co_name == "<module>":   # the script's own lines: only its exception
            if code.co_filename != script:
                return None
            frame.f_trace_lines = False
            return leaving
        if returned is None or not code.co_filename.startswith(root):
            return None      # a client's, or not its own: nothing more of this frame
        calls[id(frame)] = 0
        frame.f_trace_lines = False   # its calls and return only, not each line
        return own

    sys.settrace(called)


def tell_where_it_raises(script, root):
    """A program that ends with `raise SystemExit(1)` has no traceback and no sys.exit()
    to name the line: when a SystemExit with a status other than 0 leaves the script's
    own lines, write the line of its own that raised it, as sys.exit() does
    ("[chat kit] raise SystemExit(1) at FILE line N in FUNCTION(): CODE")."""
    def leaving(frame, event, arg):   # the script's <module> frame: its exception only
        if event != "exception" or not issubclass(arg[0], SystemExit):
            return leaving
        status, told, place = arg[1].code, False, None
        trace = arg[2]
        while trace is not None:   # the innermost line of its own, and who raised it
            path = trace.tb_frame.f_code.co_filename
            told = told or path == __file__   # sys.exit(): the wrapper told it already
            if path.startswith(root):
                place = trace.tb_frame, trace.tb_lineno
            trace = trace.tb_next
        if status is None or status == 0 or told or place is None:
            return leaving
        EXITS_TOLD.append(status)
        try:
            caller, number = place
            path = caller.f_code.co_filename
            sys.stderr.write(EXIT_NOTE % ("raise SystemExit",
                                          status if isinstance(status, int) else "…",
                                          path, number, caller.f_code.co_name,
                                          _source_line(path, number).strip()))
            sys.stderr.flush()
        except Exception:   # no stderr any more: nothing to tell
            pass
        return leaving
    return leaving


def tell_where_a_server_ends(root):
    """A server runs until it is stopped; one that ends by itself, its loop left by a
    break or a return, names where: the line its loop's function returned from (of its
    own functions that returned, the one that had made the most calls: the loop's),
    and the last of its own lines to return ("[chat kit] it ended after
    serve_forever() returned at FILE line 225: break, then main() returned at ...").
    Only its main thread's calls and returns are counted. Gives the tracer of a
    frame of its own, which is handed the calls each running frame has made."""
    ends = [None, None, -1]   # the loop's return, the last return, the loop's calls

    def returned(frame, event, calls):   # a frame of its own: its return is kept
        if event == "return":
            made = calls.pop(id(frame), 0)
            place = (frame.f_code.co_filename, frame.f_lineno or 0, frame.f_code.co_name)
            if made >= ends[2]:
                ends[0], ends[2] = place, made
            ends[1] = place

    def tell():
        sys.settrace(None)
        if ends[0] is None or hasattr(sys, "last_value") or EXITS_TOLD:
            return   # nothing returned, or a traceback or an exit's line tells it
        steps = ["%s() returned at %s line %d: %s" % (name, path, number,
                                                      _source_line(path, number).strip())
                 for path, number, name in dict.fromkeys(ends[:2])]
        try:
            sys.stderr.write(END_NOTE % ", then ".join(steps))
            sys.stderr.flush()
        except Exception:   # no stderr any more: nothing to tell
            pass

    import atexit   # built in: no file to read
    atexit.register(tell)
    return returned


take_the_graders_hard_limits()
read_lines_as_windows_does()
tell_where_it_exits()
tell_where_it_ends()
answer_where_asked()
run_the_next_sitecustomize()
