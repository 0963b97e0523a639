"""What happened to a program, told before any hint written for a check.

A check's hint is written for the usual way it fails: a live program that
answered wrongly, or not at all. Two things the grader sees override it:

* the program has EXITED, and nobody asked it to (no Ctrl-C, no end of input,
  no BYE): then the news is its exit. A crash is told by its exception and the
  innermost line of the student's own code in its traceback ("the server
  crashed: KeyError: None at chat_server.py line 88 in forget(): `del
  names[client.name]`"), with a hint for that exception; a server that ended
  itself with status 0 after a client's EXIT is told that EXIT ends that
  client's connection, not the server. No hint written for a live program
  ("is the listening socket still in the select set?") is shown then.
* a skeleton's stand-in answered in place of a TODO ("ERROR not implemented
  yet: GET_NAMES (TODO 2.5)", or "TODO 2.5 not implemented yet: ..." on its
  standard error): the hint names that TODO first, what it asks and the
  section of the students' guide that explains it.

Conversation.explanation (failure.py) asks `diagnose` once per failure; every
check's failure goes through it, so the rule lives here, not in each check.
"""

from __future__ import annotations

import os
import re
import signal
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

GUIDE = "docs/students.md"

# What each TODO of the skeletons asks, in one line, and where the students' guide
# explains it (tests/test_todos.py holds them to the skeletons' own TODO lines).
TODOS = {
    "1.1": ("Start serving the new client", "Stage 1"),
    "1.2": ("Take the bytes that arrived, and notice a client that has gone", "Stage 1"),
    "1.3": ("Rebuild whole messages from the bytes, and handle each one", "Framing"),
    "1.4": ("Echo", "Stage 1"),
    "1.5": ("Send the line as one framed message", "The client"),
    "1.6": ("Print every whole message that arrived", "The client"),
    "2.1": ("Run the command, and queue exactly one reply for the client that sent it",
            "Stage 2"),
    "2.2": ("Return True only for a valid name", "Stage 2"),
    "2.3": ("Give the client the name if it may have it, and return the reply", "Stage 2"),
    "2.4": ("Free the client's name", "Stage 2"),
    "2.5": ("Return the reply to GET_NAMES", "Stage 2"),
    "3.1": ("Deliver a private message", "Stage 3"),
    "3.2": ("Limit what waits for one client", "Stage 3"),
    "4.1": ("Say goodbye", "Stage 4"),
    "4.2": ("Stop cleanly on Ctrl-C", "Stage 4"),
    "4.3": ("BYE is the server's last word", "Stage 4"),
    "4.4": ("Leave politely", "Stage 4"),
}

STAND_IN_REPLY = re.compile(rb"not implemented yet: .*\(TODO (\d+\.\d+)\)")
STAND_IN_SAID = re.compile(rb"^TODO (\d+\.\d+) not implemented yet", re.M)
EXIT_FRAME = b"0004EXIT"


# A skeleton's TODO line: "# TODO 2.4: Free the client's name (docs/students.md § Stage 2)."
TODO_LINE = re.compile(r"#\s*TODO (?P<todo>\d+\.\d+):\s*(?P<what>[^(\n]+?)\s*"
                       r"\(docs/students\.md § (?P<section>[^)\n]+)\)")


def todo_hint(todo: str, folders=()) -> str:
    """'TODO 2.5 is not done yet ...: Return the reply to GET_NAMES (docs/students.md § Stage 2).'
    A TODO of the kit's stages is told from TODOS; another (a teacher's stage) from its
    line in the programs' `folders`, as its skeleton wrote it."""
    what, section = TODOS.get(todo) or todo_line(todo, folders) or (
        "look for '# TODO %s' in your program" % todo, None)
    where = " (%s § %s)" % (GUIDE, section) if section else ""
    return "TODO %s is not done yet (its stand-in ran in its place): %s%s." % (todo, what, where)


def todo_line(todo: str, folders) -> tuple[str, str] | None:
    """(what, section) of a TODO's line in a .py file of `folders`; None if none."""
    for folder in folders:
        for path in sorted(Path(folder).glob("*.py")):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")[:200_000]
            except OSError:
                continue
            for found in TODO_LINE.finditer(text):
                if found["todo"] == todo:
                    return found["what"].strip().rstrip("."), found["section"].strip()
    return None


def program_folders(conversation) -> list[Path]:
    """The folders of the programs of a check (each one's script's)."""
    scripts = (next((arg for arg in program.argv[1:] if arg.endswith(".py")), None)
               for program in conversation.programs if getattr(program, "argv", None))
    return list(dict.fromkeys(Path(script).parent for script in scripts if script))


def stand_in_todo(conversation) -> str | None:
    """The TODO whose stand-in answered in this check: the last stand-in reply heard,
    else the first stand-in a program of the check reported on its standard error."""
    if conversation.stand_ins:
        return conversation.stand_ins[-1]
    for program in conversation.programs:
        said = STAND_IN_SAID.search(program.stderr())
        if said:
            return said.group(1).decode()
    return None


# --- a traceback, read ----------------------------------------------------------------

@dataclass
class Crash:
    """The last exception a program's traceback shows, and where in the student's code."""
    exception: str          # 'KeyError'
    message: str            # 'None' (may be empty)
    file: str = ""          # 'chat_server.py': the innermost frame in the student's files
    line: int = 0
    function: str = ""      # '' when the traceback names none (a SyntaxError)
    code: str = ""          # that line's code, as the traceback shows it
    path: str = field(default="", compare=False)   # that file's path, as the traceback names it

    def where(self) -> str:
        if not self.file:
            return ""
        place = " at %s line %d" % (self.file, self.line)
        if self.function and self.function != "<module>":
            place += " in %s()" % self.function
        return place + (": `%s`" % self.code if self.code else "")

    def story(self) -> str:
        message = self.message if len(self.message) <= 60 else self.message[:57] + "..."
        return "%s%s%s" % (self.exception, self.where(), " (%s)" % message if message else "")


FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<function>\S+))?')
EXCEPTION = re.compile(r"^(?P<name>[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit|Warning"
                       r"|Iteration|Group)?)(?::\s?(?P<message>.*))?$")


def not_the_students(path: str) -> bool:
    """A frame of Python's own library, an installed package or the grader's start-up
    hook: not a line the student wrote."""
    if path.startswith("<"):
        return True
    normal = os.path.normcase(os.path.abspath(path))
    libraries = {sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib",
                                                             "purelib", "platlib")}
    for library in filter(None, libraries):
        if normal.startswith(os.path.normcase(os.path.abspath(library)) + os.sep):
            return True
    lowered = normal.replace("\\", "/").lower()
    return ("site-packages/" in lowered or "/grader/startup/" in lowered
            or "/.startup/" in lowered or re.search(r"/lib/python3[.\d]*/", lowered) is not None)


def read_traceback(stderr: bytes) -> Crash | None:
    """The last traceback in a program's standard error, read: its exception and the
    innermost frame in the student's own files (None if there is no traceback)."""
    text = stderr.decode("utf-8", "replace")
    at = text.rfind("Traceback (most recent call last):")
    if at < 0:
        return syntax_error(text)
    lines = text[at:].splitlines()[1:]
    frames = []       # [file, line, function, code]
    exception = None
    for number, line in enumerate(lines):
        found = FRAME.match(line)
        if found:
            frames.append([found["file"], int(found["line"]), found["function"] or "", ""])
            continue
        if line.startswith((" ", "\t")):
            stripped = line.strip()
            if frames and not frames[-1][3] and stripped and not set(stripped) <= set("^~ "):
                frames[-1][3] = re.sub(r"\s{2,}#.*$", "", stripped)   # without its comment
            continue
        if line.startswith("[Previous line repeated"):
            continue
        exception = EXCEPTION.match(line.strip())
        if exception:
            break
    if exception is None:
        return None
    crash = Crash(exception["name"], (exception["message"] or "").strip())
    own = [frame for frame in frames if not not_the_students(frame[0])]
    if own:
        crash.path, crash.line, crash.function, crash.code = own[-1]
        crash.file = Path(crash.path.replace("\\", "/")).name
    return crash


SYNTAX_ERROR = re.compile(r'^ *File "[^"]+", line \d+\n(?:(?!Traceback).*\n){0,6}?'
                          r'(?:SyntaxError|IndentationError|TabError)\b.*$', re.M)


def syntax_error(text: str) -> Crash | None:
    """A SyntaxError in the file Python was told to run, which it prints with no
    'Traceback' line above it; None if there is none."""
    found = None
    for found in SYNTAX_ERROR.finditer(text):
        pass
    if found is None:
        return None
    return read_traceback(("Traceback (most recent call last):\n" + found.group(0)).encode())


# --- what an exception usually means here -----------------------------------------------

VANISHED = ("a client that vanishes (its connection reset, or closed while the server was "
            "still sending) makes recv() or send() raise ConnectionResetError or "
            "BrokenPipeError: catch OSError around every call on a client's socket and remove "
            "that client (unregister, close, free its name): the others carry on, and nothing "
            "a client does may stop the server (docs/students.md § Stage 1, § Stage 4).")
SERVER_GONE = ("the server's end of the connection failed (a reset, or closed while the client "
               "was still sending): catch OSError around recv() and send(), say the server "
               "closed the connection, and exit (docs/students.md § The client).")
CONNECTION_ERRORS = ("ConnectionResetError", "BrokenPipeError", "ConnectionAbortedError",
                     "ConnectionError")

EXCEPTION_HINTS = {
    "KeyError": ("a dict has no such key: a name nobody holds (names[recipient] for an unknown "
                 "name), or 'del names[client.name]' for a client that never took a name. Look "
                 "the key up with .get() or 'in' first: a client's request may name anything "
                 "(docs/students.md § Stage 2)."),
    "UnicodeDecodeError": ("bytes that are not valid UTF-8 (a client may send any bytes, and "
                           "one recv() may cut a character in two): decode only a whole "
                           "payload, inside try/except UnicodeDecodeError, and reply "
                           "'ERROR <reason>' (docs/students.md § Stage 2)."),
    "ValueError": ("a conversion of what a client sent failed (int() of a header that is not 4 "
                   "digits, or unpacking 'a, b = text.split()' of a payload with another number "
                   "of words): check what came before using it, since a client may send anything "
                   "(docs/students.md § Framing)."),
    "IndexError": ("an index past the end: 'text.split()[1]' of a payload with fewer words (an "
                   "empty payload, 'NAME' alone). Check the length first, or use "
                   "text.partition(' ') (docs/students.md § The protocol)."),
    "OSError": ("a socket call failed: on a client's socket, catch it and remove that client; "
                "'Bad file descriptor' means a socket was closed but is still used (unregister "
                "it from the selector before closing it) (docs/students.md § Stage 1)."),
    "SyntaxError": "Python can't read the file: fix the line it names, then run it yourself.",
    "IndentationError": "Python can't read the file: fix the indentation of the line it names.",
    "ModuleNotFoundError": ("an import failed: the stage's programs import protocol.py from two "
                            "folders up, or from next to the stage folder (docs/students.md "
                            "§ Running)."),
    "MemoryError": "it ran out of memory: does it keep everything it receives?",
}

# Hints keyed by what happened: the exception's type, its message and the code of the
# student's line, each a regular expression ('' matches anything), with the first stage
# each is right for and the program ('' either). The first that matches is the hint; they come before
# EXCEPTION_HINTS, which a type alone chooses.
CAUSE_HINTS = [
    ("KeyError", r"already registered", "", 1, "",
     "selector.register() was given a socket the selector already holds: its number (the "
     "FD in the message) is still registered. A socket closed without "
     "selector.unregister() stays in the selector, and the next socket accept() returns "
     "gets the same number. Unregister a client's socket first, then close it "
     "(docs/students.md § Stage 1)."),
    ("KeyError", r"is not registered", "", 1, "",
     "selector.unregister() (or modify()) was given a socket the selector does not hold: "
     "it was unregistered already (a client removed twice, once for b'' and once for an "
     "error?), or never registered. Remove each client in one place, once "
     "(docs/students.md § Stage 1)."),
    ("ValueError", r"negative integer|file descriptor", "", 1, "",
     "a socket that was closed is still used: a closed socket's fileno() is -1, and select() "
     "or the selector refuses it. When a client leaves, take its socket out of what "
     "select() watches (selector.unregister(), or the list given to select.select()) "
     "before closing it, and use it no more "
     "(docs/students.md § Stage 1)."),
    ("ValueError|ProtocolError|AssertionError",
     r"(payload|message|frame|push|long).*(at most|exceed|too long|too big|limit|1024)"
     r"|(at most|exceed|limit).*\b1024\b", "", 1, "client",
     "a message over 1024 bytes was framed: a line typed may be longer than a message may "
     "hold. Measure the line in bytes, len(line) of the bytes (or of line.encode('utf-8')), "
     "before framing it: past protocol.MAX_MSG_LENGTH, print an error, send nothing, and "
     "go on reading lines (docs/students.md § The client)."),
    ("ValueError|ProtocolError|AssertionError",
     r"(payload|message|frame|push|long).*(at most|exceed|too long|too big|limit|1024)"
     r"|(at most|exceed|limit).*\b1024\b", "", 3, "",
     "a message over 1024 bytes was framed: the push 'FROM <sender> <text>' is longer than "
     "the text the sender sent, so with a long name in front it may not fit a message. "
     "Measure the push in bytes, len(push.encode('utf-8')), before framing it: past "
     "protocol.MAX_MSG_LENGTH, reply 'ERROR <reason>' to the sender, deliver nothing, and "
     "carry on (docs/students.md § Stage 3)."),
    ("BlockingIOError|OSError", r"Resource temporarily unavailable|Errno 11\b|Errno 35\b"
     r"|WSAEWOULDBLOCK|10035", r"\.send(all)?\(", 1, "",
     "send() or sendall() on a socket that never waits, whose buffer is full, raises "
     "BlockingIOError (Resource temporarily unavailable): the client is not reading as fast "
     "as it is sent to. Never send a reply or a push straight away, to that client or to "
     "another: put it in that client's queue, send() only what the socket takes, and send "
     "the rest when select() reports the socket writable (docs/students.md § Stage 3)."),
    ("BlockingIOError|OSError", r"Resource temporarily unavailable|Errno 11\b|Errno 35\b"
     r"|WSAEWOULDBLOCK|10035", r"\.recv\(", 1, "",
     "recv() with nothing to read, on a socket that never waits (made so after accept()), "
     "raises BlockingIOError (Resource temporarily unavailable): recv() was called on a "
     "socket select() did not "
     "report readable, or called again in a loop. Call recv() once for each socket select() "
     "reports readable, keep what came in that client's buffer, and go back to select() "
     "(docs/students.md § Stage 1)."),
    ("BlockingIOError|OSError", r"Resource temporarily unavailable|Errno 11\b|Errno 35\b"
     r"|WSAEWOULDBLOCK|10035", r"\.accept\(", 1, "",
     "accept() with no client waiting, on a listening socket that never waits, raises "
     "BlockingIOError: call accept() once each time select() reports the listening socket "
     "readable (docs/students.md § Stage 1)."),
    ("TypeError", r"bytes|str", "", 1, "",
     "bytes and str were mixed: what recv() returns, and what a socket sends, are bytes; "
     "text is str. Decode a whole payload with .decode('utf-8') before working on it as "
     "text, and encode text with .encode('utf-8') (or frame it) before sending it "
     "(docs/students.md § Framing)."),
]

# Stage 1 has no names and no commands: its hints speak of neither.
STAGE_1_HINTS = {
    "KeyError": ("a dict was asked for a key it does not hold (the key is in the message "
                 "above): look the key up with .get() or 'in' first, or make sure it was put "
                 "there before it is used (docs/students.md § Stage 1)."),
    "IndexError": ("an index past the end: of a buffer shorter than expected (one recv() may "
                   "return fewer bytes, even b''), or of a list. Check the length first "
                   "(docs/students.md § Framing)."),
    "vanished": ("a client that vanishes (its connection reset, or closed while the server "
                 "was still sending) makes recv() or send() raise ConnectionResetError or "
                 "BrokenPipeError: catch OSError around every call on a client's socket and "
                 "remove that client (unregister, close): the others carry on, and nothing a "
                 "client does may stop the server (docs/students.md § Stage 1)."),
}

PLAIN_CRASH = ("%s was raised at the line named above and nothing caught it, so the %s "
               "ended. Its traceback is in the %s's standard error, at the end of this "
               "check's story: read it from the bottom up.")
TRACEBACK_SHOWN = (" Its traceback is in the %s's standard error, at the end of this check's "
                   "story.")


def crash_hint(crash: Crash, label: str, stage: int = 0) -> str:
    """The hint for a crash, chosen by what happened: its exception's type and message,
    the code at the student's line, and the stage (`stage` 0: not known)."""
    if crash.exception in CONNECTION_ERRORS:
        vanished = STAGE_1_HINTS["vanished"] if stage == 1 else VANISHED
        return (vanished if label == "server" else SERVER_GONE) + TRACEBACK_SHOWN % label
    hint = None
    exception = crash.exception.rsplit(".", 1)[-1]   # 'protocol.ProtocolError'
    for kinds, message, code, first_stage, program, text in CAUSE_HINTS:
        if (re.fullmatch(kinds, exception) and re.search(message, crash.message)
                and re.search(code, crash.code) and (stage or first_stage) >= first_stage
                and program in ("", label)):
            hint = text
            break
    if hint is None and stage == 1:
        hint = STAGE_1_HINTS.get(exception)
    if hint is None:
        hint = EXCEPTION_HINTS.get(exception)
    if hint is None:
        return PLAIN_CRASH % (crash.exception, label, label)
    return hint + TRACEBACK_SHOWN % label


def stage_of(program) -> int:
    """The stage (1-4) whose program this is, read from its command line; 0 if not known."""
    for arg in getattr(program, "argv", None) or []:
        found = re.search(r"(?:^|[/\\])([1-4])_\w+[/\\]chat_(?:server|client)\.py$", str(arg))
        if found:
            return int(found.group(1))
    return 0


def shown_file(crash: Crash, program) -> None:
    """Name the crash's file as the student knows it ('stages/1_echo/chat_server.py'), as
    the Where: line does; a name alone when the program's folder is not known."""
    if crash.path and getattr(program, "argv", None):
        from grader.whereabouts import Files
        files = Files(program)
        if files.own(crash.path):
            crash.file = files.shown(crash.path)


# --- an exit without a traceback: where, and a comparison that is never true -------------

# The line the grader's startup hook writes when a program ends itself with a status
# other than 0 (grader/startup/sitecustomize.py, tell_where_it_exits).
EXIT_CALL = re.compile(r"^\[chat kit\] (?P<call>(?:raise )?[\w.]+)\((?P<status>[^)]*)\) at (?P<path>.+) "
                       r"line (?P<line>\d+) in (?P<function>\S+)\(\): ?(?P<code>.*)$", re.M)
# Python run with -b (programs.py) warns where bytes are compared with a str.
BYTES_WARNING = re.compile(r"^(?P<path>.+?):(?P<line>\d+): BytesWarning: (?P<what>[^\n]*)\n"
                           r"(?:[ \t]+(?P<code>[^\n]*))?", re.M)


def exit_call(program) -> Crash | None:
    """Where a program that ended itself with a status called sys.exit() (or exit(),
    quit(), os._exit()) or raised SystemExit, as a Crash whose exception is the call;
    None if not told."""
    found = None
    for found in EXIT_CALL.finditer(program.stderr().decode("utf-8", "replace")):
        pass
    if found is None:
        return None
    place = Crash(found["call"], found["status"], Path(found["path"].replace("\\", "/")).name,
                  int(found["line"]), found["function"], found["code"].strip(),
                  path=found["path"])
    shown_file(place, program)
    return place


# The line the startup hook writes when a server ends by itself (tell_where_a_server_ends).
END_NOTE = re.compile(r"^\[chat kit\] it ended after (?P<steps>.*)$", re.M)
END_STEP = re.compile(r"(?P<function>\w+)\(\) returned at (?P<path>.+?) line (?P<line>\d+): "
                      r"(?P<code>.*?)(?=, then \w+\(\) returned at |$)")


def end_place(program) -> str:
    """'; it ended after serve_forever() returned at stages/1_echo/chat_server.py line
    225: `break`, then main() …' for a server that ended by itself, else ''."""
    found = None
    for found in END_NOTE.finditer(program.stderr().decode("utf-8", "replace")):
        pass
    if found is None:
        return ""
    steps = []
    for step in END_STEP.finditer(found["steps"]):
        place = Crash("", "", Path(step["path"].replace("\\", "/")).name, int(step["line"]),
                      "", step["code"].strip(), path=step["path"])
        shown_file(place, program)
        steps.append("%s() returned at %s line %d%s" % (
            step["function"], place.file, place.line,
            ": `%s`" % place.code if place.code else ""))
    return "; it ended after %s" % ", then ".join(steps) if steps else ""


def exit_place(program, status) -> str:
    """' (sys.exit(1) at stages/4_exit/chat_client.py line 57 in main(): `sys.exit(1)`)'
    for a program that ended itself with that status, else ''."""
    called = exit_call(program) if status else None
    if called is None:
        return ""
    return " (%s(%s)%s)" % (called.exception, called.message, called.where())


def bytes_compared(program) -> Crash | None:
    """The student's line where Python warned that bytes were compared with a str (a
    comparison that is never true), as a Crash; None if there is none."""
    text = program.stderr().decode("utf-8", "replace")
    for found in BYTES_WARNING.finditer(text):
        if not_the_students(found["path"]) or "Comparison" not in found["what"]:
            continue
        place = Crash("BytesWarning", found["what"], Path(found["path"].replace("\\", "/")).name,
                      int(found["line"]), "", (found["code"] or "").strip(), path=found["path"])
        shown_file(place, program)
        return place
    return None


def bytes_hint(place: Crash) -> str:
    return ("%s line %d compares bytes with a str (`%s`): bytes are never equal to a str, so "
            "that comparison is always False. What recv() returns is bytes: compare it with "
            "bytes (b'BYE', protocol.REPLY_BYE.encode()), or decode the payload first "
            "(payload.decode('utf-8') == protocol.REPLY_BYE) (docs/students.md § Framing)."
            % (place.file, place.line, place.code or "?"))


# --- the diagnosis -----------------------------------------------------------------------

class OnExit(str):
    """A hint written for a program that has exited (e.g. 'a server runs until it is
    stopped'): kept as it is when the program exited without a traceback."""


def exited_unasked(program):
    """The exit status of a program that ended though the grader did not ask it to (no
    Ctrl-C, no end of input, no BYE) nor stopped it for a limit; else None."""
    if getattr(program, "limit_note", "") or getattr(program, "asked_to_end", False):
        return None
    return program.exit_status()


def exited_with(program, status: int) -> str:
    """'exited with status 1 (sys.exit(1) at … line 57 in main(): `sys.exit(1)`)', or
    'exited with status -9 (killed by signal SIGKILL)': the one wording of an exit."""
    told = "exited with status %s" % status
    if status > 0:
        return told + exit_place(program, status)
    try:
        return told + (" (killed by signal %s)" % signal.Signals(-status).name
                       if status < 0 else "")
    except ValueError:   # a number no signal has
        return told


def exit_story(program, conversation) -> str | None:
    """'the server crashed: KeyError at chat_server.py line 88 in forget(): `...` (None)'
    or 'the server exited with status 0 (no error: it ended itself) after alice's EXIT',
    for a program that ended unasked; None while it runs, or when its end was asked for."""
    status = exited_unasked(program)
    if status is None:
        return None
    crash = read_traceback(program.stderr())
    if crash is not None:
        shown_file(crash, program)
        return "the %s crashed: %s" % (program.label, crash.story())
    story = "the %s %s" % (program.label, exited_with(program, status))
    if status == 0:
        story += " (no error: it ended itself)"
        if program.label == "server" and conversation.exit_sent_by:
            story += " after %s's EXIT" % conversation.exit_sent_by
        story += end_place(program)
    return story


def exit_hint(program, conversation, hint) -> str:
    status = program.exit_status()
    crash = read_traceback(program.stderr())
    if crash is not None:
        return crash_hint(crash, program.label, stage_of(program))
    if isinstance(hint, OnExit):
        return hint
    if program.label == "server" and status == 0 and conversation.exit_sent_by:
        return ("EXIT ends that client's connection, not the server: reply BYE, then close that "
                "client's socket and free its name, and go back to select() for the others. A "
                "server runs until it is stopped with Ctrl-C (docs/students.md § Stage 4).")
    if program.label == "server":
        return ("a server runs until it is stopped with Ctrl-C: something ended it (a return or "
                "break out of the select loop, sys.exit(), an exit() call). Its output, if any, "
                "is at the end of this check's story (docs/students.md § Running).")
    return ("the client ended before the check was over: it must run until the input ends (or, "
            "in stage 4, BYE comes) or the server closes the connection. Its output, if any, is "
            "at the end of this check's story (docs/students.md § The client).")


def diagnose(conversation, got: str, hint) -> tuple[str, str]:
    """The Got line and the hint of a failure, told by what happened (see the top)."""
    for program in conversation.programs:
        story = exit_story(program, conversation)
        if story is None:
            continue
        if story not in got:
            got = "%s; %s" % (story, got)
        hint = exit_hint(program, conversation, hint)
        break
    crashed = any(read_traceback(program.stderr()) for program in conversation.programs
                  if program.exit_status() is not None)
    for program in conversation.programs if not crashed else []:
        compared = bytes_compared(program)
        if compared is not None:   # a comparison never true: the likeliest cause of all
            hint = bytes_hint(compared) + (" Then: " + hint if hint else "")
            break
    todo = stand_in_todo(conversation)
    if todo is not None:
        hint = todo_hint(todo, program_folders(conversation)) + (
            " Then: " + hint if hint else "")
    return got, str(hint) if hint else hint
