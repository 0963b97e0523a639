"""A program that has exited is told so first: its crash (exception and line) or its exit.

grader/diagnosis.py reads a crashed program's traceback (the exception, and the
innermost line of the student's own code) and puts it at the head of the Got
line, with a hint for that exception; a server that ends itself after a
client's EXIT is told that EXIT ends that connection, not the server. Here:
the traceback reader on tracebacks as Python prints them, and the real grader
on planted faults (tests/impls/faulty), whose failure texts are read, not only
which checks failed: each leads with the exit, and no hint speaks of a live
program. And the transcript shows every byte sent (1.7's bad headers).
"""

import re
import sys

import pytest

from gradekit import IMPLS, KIT, grade_many

sys.path.insert(0, str(KIT))
from grader.diagnosis import Crash, read_traceback  # noqa: E402

FAULTY = IMPLS / "faulty"
FAULTY_SOURCE = (FAULTY / "faulty_chat.py").read_text(encoding="utf-8").splitlines()
# Words of the hints written for a program that is alive (stuck, not reading, not
# accepting): never right for one that has exited.
LIVE_WORDS = ("select set", "stuck", "keep accepting", "blocking", "stopped reading",
              "still running", "endless loop", "is the server")

def line_of(code: str) -> int:
    """The line number of `code` in faulty_chat.py (it must be there once)."""
    found = [n for n, line in enumerate(FAULTY_SOURCE, 1) if line.strip() == code]
    assert len(found) == 1, (code, found)
    return found[0]

# --- the traceback reader ----------------------------------------------------------

def python_library() -> str:
    import sysconfig
    return sysconfig.get_paths()["stdlib"]

def test_a_crash_is_read_at_the_students_innermost_line():
    """The innermost frame is the library's (selectors.py): the student's own line that
    called it is the one told; Python 3.11's ^^^ markers are not code."""
    stderr = ("Chat server (stage 1) listening\n"
              "Traceback (most recent call last):\n"
              '  File "/home/zoe/kit/stages/1_echo/chat_server.py", line 301, in <module>\n'
              "    main()\n"
              '  File "/home/zoe/kit/stages/1_echo/chat_server.py", line 240, in serve_forever\n'
              "    for key, events in selector.select(timeout=SELECT_TIMEOUT):\n"
              "                       ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
              '  File "%s/selectors.py", line 468, in select\n'
              "    fd_event_list = self._selector.poll(timeout, max_ev)\n"
              "OSError: [Errno 9] Bad file descriptor\n" % python_library()).encode()
    crash = read_traceback(stderr)
    assert crash == Crash("OSError", "[Errno 9] Bad file descriptor", "chat_server.py", 240,
                          "serve_forever",
                          "for key, events in selector.select(timeout=SELECT_TIMEOUT):")
    assert crash.story() == ("OSError at chat_server.py line 240 in serve_forever(): `for key, "
                             "events in selector.select(timeout=SELECT_TIMEOUT):` ([Errno 9] "
                             "Bad file descriptor)")

def test_the_last_of_chained_tracebacks_is_read():
    stderr = (b"Traceback (most recent call last):\n"
              b'  File "C:\\Users\\zoe\\kit\\stages\\2_naming\\chat_server.py", line 80, in take\n'
              b"    text = payload.decode()\n"
              b"UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 5\n"
              b"\nDuring handling of the above exception, another exception occurred:\n\n"
              b"Traceback (most recent call last):\n"
              b'  File "C:\\Users\\zoe\\kit\\stages\\2_naming\\chat_server.py", line 95, in forget\n'
              b"    del names[client.name]\n"
              b"KeyError: None\n")
    crash = read_traceback(stderr)
    assert (crash.exception, crash.message, crash.file, crash.line, crash.function,
            crash.code) == ("KeyError", "None", "chat_server.py", 95, "forget",
                            "del names[client.name]")

def test_a_syntax_error_names_its_line_and_no_function():
    stderr = (b"  File \"/k/stages/1_echo/chat_server.py\", line 12\n"
              b"    def accept_client(listener\n"
              b"                     ^\n"
              b"SyntaxError: '(' was never closed\n")
    crash = read_traceback(stderr)   # no "Traceback" header: Python prints none
    assert (crash.exception, crash.message) == ("SyntaxError", "'(' was never closed")
    assert crash.where() == " at chat_server.py line 12: `def accept_client(listener`"
    crash = read_traceback(b"Traceback (most recent call last):\n" + stderr)
    assert crash.where() == " at chat_server.py line 12: `def accept_client(listener`"
    assert read_traceback(b"TODO 1.1 not implemented yet: ...\n") is None

# --- the grader on planted faults -------------------------------------------------------

FAULTS = {   # fault -> the stage graded
    "crash_on_reset": "4",
    "exit_on_exit": "4",
    "crash_on_bad_header": "1",
    "crash_unnamed_leaves": "2",
    "overlong_push_crash": "3",
    "overlong_push_sent": "3",
}

@pytest.fixture(scope="module")
def graded():
    jobs = [(FAULTY, ("--stage", stage), {"CHATKIT_FAULT": fault})
            for fault, stage in FAULTS.items()]
    return dict(zip(FAULTS, grade_many(jobs, workers=3)))

def failures(grade):
    """{check: (its text, its Got line, its Hint line)} for the checks that ran and failed."""
    found = {}
    for test in grade.tests():
        text = test["output"]
        if test["status"] != "failed" or text.startswith("Blocked by"):
            continue
        got = re.search(r"^Got: +(.*)$", text, re.M)
        hint = re.search(r"^Hint: +(.*)$", text, re.M)
        found[test["number"]] = (text, got.group(1) if got else "", hint.group(1) if hint else "")
    return found

def assert_told(grade, lead, hint_start, at_least):
    failed = failures(grade)
    assert len(failed) >= at_least, "expected %d failed checks at least: %s" % (
        at_least, sorted(failed))
    for number, (text, got, hint) in failed.items():
        assert got.startswith(lead), "%s: the Got line does not lead with the exit:\n%s" % (
            number, text)
        assert hint.startswith(hint_start), "%s: the hint is not about the exit:\n%s" % (
            number, text)
        live = [word for word in LIVE_WORDS if word in hint]
        assert not live, "%s: a hint for a live program (%s):\n%s" % (number, live, text)

def test_a_crash_on_a_reset_is_told_by_its_exception_and_line(graded):
    line = line_of("data = conn.sock.recv(65536)")
    assert_told(graded["crash_on_reset"],
                "the server crashed: ConnectionResetError at faulty/faulty_chat.py line %d in read(): "
                "`data = conn.sock.recv(65536)`" % line,
                "a client that vanishes (its connection reset", at_least=3)

def test_a_server_that_ends_itself_on_exit_is_told_exit_ends_one_connection(graded):
    """4.3 used to say 'is the listening socket still in the select set?'."""
    grade = graded["exit_on_exit"]
    assert_told(grade, "the server exited with status 0 (no error: it ended itself) after ",
                "EXIT ends that client's connection, not the server", at_least=3)
    assert "4.3" in failures(grade)

def test_a_crash_on_a_bad_header_and_the_bytes_after_it(graded):
    """1.7: int() of 'abcd' raises ValueError; the transcript shows the bytes that followed
    the bad header ('abcd' then 'xyz')."""
    text, got, hint = failures(graded["crash_on_bad_header"])["1.7"]
    assert "(the bytes: 'abcdxyz')" in text, text
    assert got.startswith("the server crashed: ValueError at faulty/faulty_chat.py line %d in "
                          "take_messages(): `length = int(header)` (" % line_of(
                              "length = int(header)        # int(b\"abcd\") raises ValueError")), text
    assert hint.startswith("a conversion of what a client sent failed"), text

def test_an_unnamed_client_leaving_is_told_as_a_key_error(graded):
    failed = failures(graded["crash_unnamed_leaves"])
    assert failed, "crash_unnamed_leaves: nothing failed"
    for number, (text, got, hint) in failed.items():
        assert got.startswith("the server crashed: KeyError at faulty/faulty_chat.py line %d in "
                              "forget_name(): `del self.names[conn.name]` (None)" % line_of(
                                  "del self.names[conn.name]   # KeyError: None, for a client "
                                  "that never took a name")), text
        assert hint.startswith("a dict has no such key"), text


def test_an_overlong_push_is_told_by_its_cause(graded):
    """3.17: a server that frames the push 'FROM <long name> <text>' past 1024 bytes
    crashes (frame() raises, as protocol.frame() does) or sends a frame announcing 1025
    bytes; either way the hint names the push's length, not a header conversion."""
    text, got, hint = failures(graded["overlong_push_crash"])["3.17"]
    assert got.startswith("the server crashed: ValueError at faulty/faulty_chat.py line %d in "
                          "frame(): " % line_of('raise ValueError("a payload is at most %d '
                                                'bytes; this one is %d" % (MAX_MSG, '
                                                'len(payload)))')), text
    assert hint.startswith("a message over 1024 bytes was framed: the push 'FROM <sender> "
                           "<text>' is longer than the text"), text
    assert "int()" not in hint, text
    text, got, hint = failures(graded["overlong_push_sent"])["3.17"]
    assert got.startswith("max      ← server  'SENT bo'; meanwhile bo got a message whose "
                          "header announces 1025 bytes"), text
    assert hint.startswith("the push 'FROM <sender> <text>' is longer than the text"), text


# --- the rule, on programs made up for it ---------------------------------------------

class Ended:
    """A program as the diagnosis sees one: its label, exit status and standard error."""

    def __init__(self, label="server", status=None, stderr=b"", asked=False, limit=""):
        self.label, self.status, self.err = label, status, stderr
        self.asked_to_end, self.limit_note, self.limit_reason = asked, limit, ""

    def exit_status(self):
        return self.status

    def wait_exit(self, timeout):
        return self.status

    def stderr(self):
        return self.err

    def describe(self):
        return ""


def told(program, hint="is the listening socket still in the select set?", heard=None):
    from grader.failure import Conversation
    conversation = Conversation()
    conversation.programs.append(program)
    conversation.stand_ins += heard or []
    text = conversation.explanation("bob connects to the server",
                                    "the connection failed: refused", hint)
    got = re.search(r"^Got: +(.*)$", text, re.M).group(1)
    found = re.search(r"^Hint: +(.*)$", text, re.M)
    return got, found.group(1) if found else ""


def test_only_an_exit_nobody_asked_for_replaces_the_hint():
    from grader.diagnosis import OnExit
    live = "is the listening socket still in the select set?"
    assert told(Ended(status=None)) == ("the connection failed: refused", live)
    assert told(Ended(status=1, asked=True)) == ("the connection failed: refused", live)
    assert told(Ended(status=-9, limit="Stopped by the grader"))[1] == live
    got, hint = told(Ended(status=0))
    assert got == "the server exited with status 0 (no error: it ended itself); the " \
                  "connection failed: refused"
    assert hint.startswith("a server runs until it is stopped with Ctrl-C")
    assert told(Ended(status=0), OnExit("when the last client leaves, go back to select()"))[1] \
        == "when the last client leaves, go back to select()"
    got, hint = told(Ended(status=-11))
    assert got.startswith("the server exited with status -11 (killed by signal SIGSEGV); ")
    crashed = Ended(status=1, stderr=b"Traceback (most recent call last):\n"
                                     b'  File "/k/chat_server.py", line 7, in main\n'
                                     b"    names[who]\nKeyError: 'bob'\n")
    got, hint = told(crashed, OnExit("when the last client leaves, go back to select()"))
    assert got.startswith("the server crashed: KeyError at chat_server.py line 7 in main(): "
                          "`names[who]` ('bob'); ")
    assert hint.startswith("a dict has no such key")


def test_a_stand_in_that_answered_comes_first():
    got, hint = told(Ended(status=None), heard=["1.3", "2.5"])
    assert hint == ("TODO 2.5 is not done yet (its stand-in ran in its place): Return the reply "
                    "to GET_NAMES (docs/students.md § Stage 2). Then: is the listening socket "
                    "still in the select set?")
    _, hint = told(Ended(status=None, stderr=b"TODO 1.2 not implemented yet: ...\n"
                                              b"TODO 1.3 not implemented yet: ...\n"))
    assert hint.startswith("TODO 1.2 is not done yet")


# --- the hint by cause: the exception's type and message, the code, the stage -----------

def hint_for_crash(exception, message, code, stage):
    from grader.diagnosis import crash_hint
    return crash_hint(Crash(exception, message, "chat_server.py", 9, "serve", code),
                      "server", stage)


@pytest.mark.parametrize("exception, message, code, stage, start", [
    ("KeyError", '"<socket.socket fd=6, family=2, type=1, proto=0, laddr=(\'127.0.0.1\', '
     '7777), raddr=(\'127.0.0.1\', 50112)> (FD 6) is already registered"',
     "selector.register(client, selectors.EVENT_READ)", 1,
     "selector.register() was given a socket the selector already holds"),
    ("KeyError", "'<socket.socket [closed] fd=-1> is not registered'",
     "selector.unregister(sock)", 1, "selector.unregister() (or modify()) was given"),
    ("KeyError", "4", "del clients[fd]", 1, "a dict was asked for a key it does not hold"),
    ("KeyError", "None", "del names[client.name]", 2, "a dict has no such key: a name nobody"),
    ("BlockingIOError", "[Errno 11] Resource temporarily unavailable",
     "recipient.sock.sendall(protocol.frame(push))", 3,
     "send() or sendall() on a socket that never waits, whose buffer is full"),
    ("BlockingIOError", "[Errno 11] Resource temporarily unavailable",
     "data = sock.recv(4096)", 1, "recv() with nothing to read, on a socket that never waits"),
    ("ProtocolError", "a payload is at most 1024 bytes; this one is 1025",
     "queue_message(recipient, push)", 3, "a message over 1024 bytes was framed"),
    ("ValueError", "file descriptor cannot be a negative integer (-1)",
     "events = selector.select(timeout=SELECT_TIMEOUT)", 1,
     "a socket that was closed is still used"),
    ("ValueError", "invalid literal for int() with base 10: b'abcd'",
     "length = int(header)", 1, "a conversion of what a client sent failed"),
    ("TypeError", "can't concat str to bytes", "buffer += text", 1,
     "bytes and str were mixed"),
    ("ZeroDivisionError", "division by zero", "rate = sent / elapsed", 2,
     "ZeroDivisionError was raised at the line named above and nothing caught it"),
])
def test_the_hint_is_chosen_by_what_happened(exception, message, code, stage, start):
    hint = hint_for_crash(exception, message, code, stage)
    assert hint.startswith(start), hint
    assert hint.endswith("at the end of this check's story.") or hint.endswith(
        "read it from the bottom up."), hint
    assert "below" not in hint, hint


def test_no_hint_about_names_in_stage_1():
    """Stage 1 has no names (nor commands): whatever the crash, its hint speaks of none;
    from stage 2 on, a KeyError's hint speaks of the names table."""
    crashes = [("KeyError", message, "x = table[key]") for message in
               ["None", "'bob'", "6", '"(FD 6) is already registered"']]
    crashes += [("IndexError", "index out of range", "kind = data[0]"),
                ("ConnectionResetError", "[Errno 104] Connection reset by peer",
                 "data = client.sock.recv(4096)"),
                ("BrokenPipeError", "[Errno 32] Broken pipe", "client.sock.send(data)")]
    for exception, message, code in crashes:
        hint = hint_for_crash(exception, message, code, 1)
        assert not re.search(r"\bnames?\b|NAME", hint.replace("FD in the message", "")), hint
    assert "names" in hint_for_crash("KeyError", "None", "del names[client.name]", 2)
    assert "free its name" in hint_for_crash("ConnectionResetError", "", "x.recv(1)", 4)


def test_the_crash_names_the_file_as_where_does():
    """A crash in the student's file is told by its path from the graded folder, as the
    Where: line names it ('stages/1_echo/chat_server.py'), not by its bare name."""
    from grader.diagnosis import exit_story

    class Crashed(Ended):
        argv = ["python", "/home/zoe/kit/stages/1_echo/chat_server.py", "--port", "5"]

    stderr = (b"Traceback (most recent call last):\n"
              b'  File "/home/zoe/kit/stages/1_echo/chat_server.py", line 143, in serve\n'
              b"    selector.register(client, selectors.EVENT_READ)\n"
              b'KeyError: "<socket.socket fd=6> (FD 6) is already registered"\n')
    from grader.failure import Conversation
    story = exit_story(Crashed(status=1, stderr=stderr), Conversation())
    assert story.startswith("the server crashed: KeyError at stages/1_echo/chat_server.py "
                            "line 143 in serve(): `selector.register("), story


def test_bytes_compared_with_a_str_is_named_first():
    """Python run with -b warns where bytes are compared with a str: that line leads the
    hint of whatever failed, before the check's own, unless a crash explains it."""
    warned = (b"/k/stages/4_exit/chat_client.py:100: BytesWarning: Comparison between "
              b"bytes and string\n  if payload == protocol.REPLY_BYE:\n")
    got, hint = told(Ended(label="client", status=1, asked=True, stderr=warned),
                     "after BYE the client is done")
    assert hint.startswith("chat_client.py line 100 compares bytes with a str (`if payload "
                           "== protocol.REPLY_BYE:`)"), hint
    assert hint.endswith("Then: after BYE the client is done"), hint
    crashed = warned + b"Traceback (most recent call last):\n" \
                       b'  File "/k/chat_client.py", line 7, in main\n    x[1]\n' \
                       b"IndexError: list index out of range\n"
    _, hint = told(Ended(label="client", status=1, stderr=crashed))
    assert hint.startswith("an index past the end"), hint
