"""Where a program is (grader/whereabouts.py, grader/startup/sitecustomize.py).

Real programs, started the grader's way (programs.Program, in a Sandbox), are
asked where they are; programs that answer garbage, answer late, answer nothing,
or are not Python at all give no location, quickly, and never an error. The way
of asking is one for every system; the one call Windows lacks
(os.register_at_fork) is taken away here to prove the hook does without it.
The planted faults' failures (where stuck programs wait, where a spinning one
spins) are proven in test_mutants.py.
"""

import json
import os
import re
import socket
import sys
import textwrap
import time

import pytest

from gradekit import KIT, wait_until

sys.path.insert(0, str(KIT))
from grader import whereabouts  # noqa: E402
from grader.limits import Limits  # noqa: E402
from grader.programs import Program, Sandbox  # noqa: E402
from grader.failure import Conversation  # noqa: E402

KIT_HINT = "the check's own hint"

STUCK_IN_RECV = """
import socket, sys, time
def hang_up(conn):
    data = conn.recv(4)
def main():
    a, b = socket.socketpair()
    print("ready", flush=True)
    hang_up(b)
main()
"""


@pytest.fixture
def sandbox():
    box = Sandbox(Limits(memory=0, processes=0))
    yield box
    box.stop_everything()


def student_program(sandbox, tmp_path, source: str, argv_extra=(), label="server", env=None,
                    stdin=False):
    """`source` as <tmp>/impl/1_echo/chat_server.py, started the grader's way, once it
    printed 'ready' (and, if it can, said where it is)."""
    stage = tmp_path / "impl" / "1_echo"
    stage.mkdir(parents=True, exist_ok=True)
    script = stage / "chat_server.py"
    script.write_text(textwrap.dedent(source), encoding="utf-8")
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        program = Program([sys.executable, *argv_extra, str(script)], label, sandbox,
                          stdin=stdin)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert wait_until(lambda: b"ready" in program.stdout() or program.exit_status() is not None,
                      10), program.describe()
    return program


def told(program) -> bool:
    token = program.sandbox.whereabouts.tokens.get(program)
    return bool(program.sandbox.whereabouts.by_token.get(token))


def where_text(program, label="server", hint=KIT_HINT):
    conversation = Conversation()
    conversation.programs.append(program)
    conversation.waited_on = label
    return whereabouts.where(conversation, hint)


def test_a_program_stuck_in_recv_says_where_and_gets_the_recv_hint(sandbox, tmp_path):
    program = student_program(sandbox, tmp_path, STUCK_IN_RECV)
    assert wait_until(lambda: told(program), 10)
    lines, hint = where_text(program)
    assert lines[0] == ("Where:    the server is waiting in recv(), in hang_up() at "
                        "impl/1_echo/chat_server.py line 4:"), lines
    assert lines[1].strip() == "data = conn.recv(4)"
    assert lines[2].strip() == "called from main() at line 8 of impl/1_echo/chat_server.py"
    assert hint.startswith("recv() on a blocking socket")


def test_a_program_in_select_is_idle_and_keeps_the_checks_hint(sandbox, tmp_path):
    program = student_program(sandbox, tmp_path, """
        import selectors, socket
        a, b = socket.socketpair()
        selector = selectors.DefaultSelector()
        selector.register(b, selectors.EVENT_READ)
        print("ready", flush=True)
        while True:
            events = selector.select(timeout=1.0)
    """)
    assert wait_until(lambda: told(program), 10)
    lines, hint = where_text(program)
    assert "waiting in select(), in <module>() at impl/1_echo/chat_server.py line 8:" in lines[0]
    assert any("idle" in line for line in lines), lines
    assert hint == KIT_HINT


def test_a_client_in_input_gets_the_input_hint(sandbox, tmp_path):
    program = student_program(sandbox, tmp_path, """
        print("ready", flush=True)
        line = input()
    """, label="client", stdin=True)
    assert wait_until(lambda: told(program), 10)
    lines, hint = where_text(program, "client")
    assert "the client is waiting in input(), in <module>() at " \
           "impl/1_echo/chat_server.py line 3:" in lines[0], lines
    assert hint.startswith("the client waits for a line you type")


def test_a_program_of_several_threads_keeps_the_checks_hint(sandbox, tmp_path):
    """A client reading standard input in its main thread and the socket in another is
    the right design: where each thread waits is shown, and the check's hint holds."""
    program = student_program(sandbox, tmp_path, """
        import socket, threading
        a, b = socket.socketpair()
        def receive():
            data = b.recv(4)
        threading.Thread(target=receive).start()
        print("ready", flush=True)
        line = input()
    """, label="client", stdin=True)
    assert wait_until(lambda: told(program), 10)
    lines, hint = where_text(program, "client")
    assert lines[0].startswith("Where:    the client is waiting in input(), in <module>() at "
                               "impl/1_echo/chat_server.py line 8:"), lines
    assert lines[2] == ("          another thread is waiting in recv(), in receive() at "
                        "impl/1_echo/chat_server.py line 5: data = b.recv(4)"), lines
    assert hint == KIT_HINT


def test_a_frame_without_a_line_number_does_not_silence_the_program(sandbox, tmp_path):
    """Python gives some frames no line number (f_lineno None: an instruction the compiler
    placed nowhere, e.g. an exception handler's clean-up). A look that meets one still
    answers, and the program goes on answering; before, the answering thread died of it,
    and every later question (1.12's fifteen looks) went unanswered."""
    program = student_program(sandbox, tmp_path, """
        import socket, threading
        def odd(event):
            event.wait()
        odd.__code__ = odd.__code__.replace(co_linetable=b"")   # no line numbers at all
        threading.Thread(target=odd, args=(threading.Event(),), daemon=True).start()
        def hang_up(conn):
            data = conn.recv(4)
        a, b = socket.socketpair()
        print("ready", flush=True)
        hang_up(b)
    """)
    assert wait_until(lambda: told(program), 10)
    for _ in range(2):
        lines, _ = where_text(program)
        assert lines and "waiting in recv(), in hang_up() at impl/1_echo/chat_server.py " \
                         "line 8:" in lines[0], lines
    assert whereabouts.samples(program), "no samples"


def test_a_spinning_program_is_sampled_where_it_spins(sandbox, tmp_path):
    """Each look gives a line with its own code, though the spinning thread moves on (here
    from one call to the other) while the hook reads the file: under Wine, a look at a
    server spinning through recv() once said line 154 with line 140's code. (A guard: this
    program did not provoke that race in 8 runs of the old hook, Linux and Wine.)"""
    program = student_program(sandbox, tmp_path, """
        import os, time
        def spin():
            while True:
                time.sleep(0)
                os.stat(".")
        print("ready", flush=True)
        spin()
    """)
    assert wait_until(lambda: told(program), 10)
    started = time.monotonic()
    lines = whereabouts.samples(program)
    assert time.monotonic() - started < 5
    assert lines[0].startswith("Where:    where the server was at 15 looks"), lines
    counted = [line for line in lines[1:] if "in spin() at impl/1_echo/chat_server.py" in line]
    assert counted and sum(int(line.split("×")[0]) for line in counted) == 15, lines
    source = (tmp_path / "impl" / "1_echo" / "chat_server.py").read_text().splitlines()
    for line in counted:
        number, code = re.search(r"line (\d+)(?:, in \w+\(\))?: (.*)$", line).groups()
        assert source[int(number) - 1].strip() == code, (line, source)


def test_a_program_running_past_a_call_is_not_said_to_wait_in_it(sandbox, tmp_path):
    """One look at a program spinning through recv() (a socket at its end: b'' at once,
    again and again) lands on recv() as one at a blocked program does: the CPU it used
    tells them apart, and it gets the hint for a program that never waits. (It says
    'ready' once it has spun a while, as a check asks only after waiting in vain.)"""
    program = student_program(sandbox, tmp_path, """
        import socket
        def serve(sock, times):
            for _ in range(times):
                data = sock.recv(4)
        a, b = socket.socketpair()
        a.close()
        serve(b, 1000)
        print("ready", flush=True)
        serve(b, 10 ** 12)
    """)
    assert wait_until(lambda: told(program), 10)
    lines, hint = where_text(program)
    assert re.match(r"Where:    the server is not waiting but running \(\d+% of a CPU for "
                    r"0.2 s\), here in serve\(\) at impl/1_echo/chat_server.py line 5, "
                    r"calling recv\(\):$", lines[0]), lines
    assert lines[1].strip() == "data = sock.recv(4)"
    assert hint == whereabouts.HINT_BUSY["server"]


@pytest.mark.parametrize("clocks, share", [
    ([[0, 0], [200000, 150000]], 0.75),
    ([[5, 10], [100005, 10]], 0.0),
    ([[0, 50], [100, 10]], 0.0),             # CPU time going back: none used
    ([[0, 0], [0, 5]], None),                # no time passed
    ([[0, 0], [100, 5.0]], None),            # not whole numbers
    ([[0, True], [100, 5]], None),
    ([[0, 0]], None), ("0 0 1 1", None), (None, None), ([[0, 0], [1, 2], [3, 4]], None),
])
def test_the_cpu_a_program_says_it_used_is_checked(clocks, share):
    assert whereabouts.busy_share(clocks) == share


def test_answering_imports_nothing(sandbox, tmp_path):
    """Each file the answering thread reads (a module imported) gives the interpreter to
    a spinning thread until its next switch, which Windows' timer stretches: under Wine,
    importing json and linecache (re, enum, tokenize: Windows' Python has not loaded them
    by then) made a spinning server's first answer take 1.7-2.3 s, past the grader's
    wait. Python 3.11 and later import dis to tell the call's columns: loaded first here."""
    program = student_program(sandbox, tmp_path, """
        import sys
        if sys.version_info >= (3, 11):
            import dis
        print("ready", flush=True)
        line = input()
        before = set(sys.modules)
        print("counted", flush=True)
        line = input()
        print("new:", *sorted(set(sys.modules) - before), flush=True)
    """, label="client", stdin=True)
    assert wait_until(lambda: told(program), 10)
    program.proc.stdin.write(b"1\n")
    program.proc.stdin.flush()
    assert wait_until(lambda: b"counted" in program.stdout(), 10), program.describe()
    # It printed 'counted' and goes on to input(): on a busy machine it may not be there
    # yet when first asked (CI, a busy core: "in <module>() ... line 8", the print).
    seen = []

    def in_input() -> bool:
        seen.append(where_text(program, "client")[0])
        return "waiting in input()" in seen[-1][0]

    assert wait_until(in_input, 10), seen[-3:]
    assert whereabouts.samples(program)[0].startswith("Where:    where the server was at 15")
    program.proc.stdin.write(b"2\n")
    program.proc.stdin.flush()
    assert wait_until(lambda: b"new:" in program.stdout(), 10), program.describe()
    new = program.stdout().decode().split("new:")[1].split()
    assert new == [], new


def test_the_hook_works_without_register_at_fork_as_on_windows(sandbox, tmp_path):
    """Windows' os has no register_at_fork: the hook must do without it. Here it is taken
    away before site runs the hook (python -S, then site.main())."""
    program = student_program(sandbox, tmp_path, STUCK_IN_RECV, argv_extra=[
        "-S", "-c", "import os, runpy, site, sys; vars(os).pop('register_at_fork', None); "
                    "site.main(); "
                    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"])
    assert wait_until(lambda: told(program), 10)
    lines, hint = where_text(program)
    assert "waiting in recv(), in hang_up() at impl/1_echo/chat_server.py line 4:" in lines[0]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork: POSIX")
def test_a_forked_child_does_not_answer_for_its_parent(sandbox, tmp_path):
    program = student_program(sandbox, tmp_path, """
        import os, socket, time
        a, b = socket.socketpair()
        if os.fork() == 0:
            while True:
                time.sleep(1)
        print("ready", flush=True)
        data = b.recv(4)
    """)
    assert wait_until(lambda: told(program), 10)
    for _ in range(3):   # the parent answers every time: the child never takes the question
        lines, _ = where_text(program)
        assert "waiting in recv(), in <module>() at impl/1_echo/chat_server.py line 8:" \
               in lines[0], lines


def test_a_program_that_is_not_hooked_has_no_location(sandbox, tmp_path):
    """python -I ignores PYTHONPATH, so no startup hook: as a program that is not Python."""
    program = student_program(sandbox, tmp_path, STUCK_IN_RECV, argv_extra=["-I"])
    started = time.monotonic()
    assert where_text(program) == ([], KIT_HINT)
    assert time.monotonic() - started < 0.5


def test_an_exited_program_is_not_asked(sandbox, tmp_path):
    program = student_program(sandbox, tmp_path, 'print("ready", flush=True)')
    assert program.wait_exit(10) == 0
    assert where_text(program) == ([], KIT_HINT)


class Impostor:
    """The grader's view of a program, played by the test: it calls in with the
    program's token and answers as told."""

    def __init__(self, listener, tmp_path):
        script = tmp_path / "impl" / "1_echo" / "chat_server.py"
        self.argv = [sys.executable, str(script)]
        self.label = "server"
        self.sandbox = type("Box", (), {"whereabouts": listener})()
        host, port, token = listener.environment(self)[whereabouts.VARIABLE].split()
        self.sock = socket.create_connection((host, int(port)))
        self.sock.sendall(b"CHATKIT-WHERE %s %d\n" % (token.encode(), os.getpid()))
        assert wait_until(lambda: listener.by_token[token], 5)

    def exit_status(self):
        return None


GOOD = json.dumps({"pid": 1, "samples": [[{"main": True, "frames": [
    ["/x/impl/1_echo/chat_server.py", 3, "f", "data = s.recv(4)", "s.recv(4)"]]}]]})


@pytest.mark.parametrize("answer", [
    b"garbage\n", b"{\"samples\": 3}\n", b"[1, 2]\n", b"\xff\xfe\n",
    json.dumps({"samples": [[{"main": True, "frames": [[1, 2, 3, 4, 5]]}]]}).encode() + b"\n",
    json.dumps({"samples": [[{"main": True, "frames": [["a", "x", "f", "", ""]]}]]}).encode()
    + b"\n",
    b"x" * (whereabouts.MOST_ANSWER + 10),   # no end of line, past the bound
    b"",                                     # nothing at all: the wait is bounded
    None,                                    # it hangs up
], ids=["text", "wrong-shape", "a-list", "not-utf8", "wrong-types", "bad-line", "endless",
        "silent", "hangs-up"])
def test_what_a_program_answers_is_untrusted(tmp_path, answer):
    listener = whereabouts.Listener()
    impostor = Impostor(listener, tmp_path)
    if answer is None:
        impostor.sock.close()
    elif answer:
        impostor.sock.sendall(answer)
    started = time.monotonic()
    conversation = Conversation()
    conversation.programs.append(impostor)
    conversation.waited_on = "server"
    assert whereabouts.where(conversation, KIT_HINT) == ([], KIT_HINT)
    assert time.monotonic() - started < whereabouts.ANSWER_WAIT + 1
    assert whereabouts.samples(impostor) == []


def test_a_program_asked_in_vain_for_samples_is_said_so(tmp_path):
    """1.12 asks a spinning server for fifteen looks; one that calls in and never answers
    gets a line saying so (bounded), so its failure tells that from one never asked."""
    impostor = Impostor(whereabouts.Listener(), tmp_path)
    bound = whereabouts.ANSWER_WAIT + 2 * whereabouts.SAMPLES * whereabouts.SAMPLE_PAUSE_MS / 1000
    started = time.monotonic()
    assert whereabouts.samples(impostor) == [whereabouts.NO_ANSWER % bound]
    assert time.monotonic() - started < bound + 1
    assert whereabouts.samples(impostor) == []   # its connection is dropped: not asked again


def test_control_characters_from_a_program_are_not_printed(tmp_path):
    listener = whereabouts.Listener()
    impostor = Impostor(listener, tmp_path)
    root = str(tmp_path / "impl" / "1_echo" / "chat_server.py")
    impostor.sock.sendall(json.dumps({"samples": [[{"main": True, "frames": [
        [root, 3, "f\x1b[2J", "data = s.recv(4)\x07\r", "s.recv(4)"]]}]]}).encode() + b"\n")
    conversation = Conversation()
    conversation.programs.append(impostor)
    conversation.waited_on = "server"
    lines, hint = whereabouts.where(conversation, KIT_HINT)
    assert lines[0] == ("Where:    the server is waiting in recv(), in f?[2J() at "
                        "impl/1_echo/chat_server.py line 3:"), lines
    assert lines[1].strip() == "data = s.recv(4)??"
    assert hint.startswith("recv() on a blocking socket")


def test_a_stranger_with_a_wrong_token_is_turned_away(tmp_path):
    listener = whereabouts.Listener()
    impostor = Impostor(listener, tmp_path)
    host, port = listener.sock.getsockname()[:2]
    with socket.create_connection((host, port)) as stranger:
        stranger.sendall(b"CHATKIT-WHERE 0123456789abcdef %d\n" % os.getpid())
        stranger.settimeout(5)
        assert stranger.recv(10) == b""     # closed by the grader
    assert sum(len(c) for c in listener.by_token.values()) == 1
    impostor.sock.close()


@pytest.mark.parametrize("call, code, expected", [
    ("conn.recv(4)", "data = conn.recv(4)", "recv"),
    ("", "data = conn.recv(4)", "recv"),                     # Python 3.10: the line alone
    ("", "for raw in iter(sys.stdin.buffer.readline, b''):", "readline"),
    ("", "for line in sys.stdin:", "readline"),
    ("sock.sendall(frame(input()))", "sock.sendall(frame(input()))", "sendall"),
    ("input()", "sock.sendall(frame(input()))", "input"),
    ("selector.select(timeout=1)", "for key, mask in selector.select(timeout=1):", "select"),
    ("time.sleep(0.1)", "time.sleep(0.1)", "sleep"),
    ("listener.accept()", "conn, address = listener.accept()", "accept"),
    ("handle(client)", "handle(client)", None),
    ("", "total += 1", None),
    ("", "received = 0  # a name that holds recv, but no call", None),
])
def test_the_call_a_line_waits_in(call, code, expected):
    frame = whereabouts.Frame("/x/a.py", 1, "f", code, call)
    assert whereabouts.call_of(frame) == expected


# --- a select() that never waits; where a program ended itself ---------------------------

@pytest.mark.parametrize("code, never_waits", [
    ("for key, events in selector.select(timeout=SELECT_TIMEOUT):", True),
    ("for key, events in selector.select(timeout=WAKE_UP):", False),
    ("readable, writable, _ = select.select(readers, writers, [], 0)", True),
    ("readable, writable, _ = select.select(readers, writers, [], 0.5)", False),
    ("readable, _, _ = select.select(readers, [], [])", False),
    ("events = selector.select(0)", True),
    ("events = selector.select(-1)", True),
    ("events = selector.select()", False),
    ("data = sock.recv(0)", False),
])
def test_a_select_with_a_timeout_of_0_is_told(tmp_path, code, never_waits):
    """The spinning server's line is read with the file's own constants: a select()
    whose timeout is 0 (or less) never waits, and its hint says so."""
    source = tmp_path / "chat_server.py"
    source.write_text("SELECT_TIMEOUT = 0   # so the loop never waits\nWAKE_UP = 1.0\n",
                      encoding="utf-8")
    assert whereabouts.zero_timeout(str(source), code) is never_waits


def what_it_tells(program, statuses) -> dict:
    """{status: its standard error} of `program` run under the startup hook with each
    status as its argument (it must exit with it)."""
    import subprocess
    env = dict(os.environ, PYTHONPATH=str(KIT / "grader" / "startup"))
    env.pop("CHATKIT_WHERE", None)
    told = {}
    for status in statuses:
        run = subprocess.run([sys.executable, str(program), str(status)], env=env,
                             capture_output=True, timeout=30)
        assert run.returncode == status
        told[status] = run.stderr.decode()
    return told


class ExitedClient:
    """A client that ended itself with `status`, having written `stderr`, as the
    diagnosis reads a program."""
    label, asked_to_end, limit_note = "client", False, ""

    def __init__(self, program, status: int, stderr: str) -> None:
        self.argv = [sys.executable, "-b", str(program), "--port", "5"]
        self.status, self.written = status, stderr

    def exit_status(self):
        return self.status

    def stderr(self):
        return self.written.encode()


def test_an_exit_with_a_status_names_the_line_that_called_it(tmp_path):
    """The startup hook writes where sys.exit(), exit() or os._exit() was called with a
    status other than 0; the diagnosis names that line in the failure (its path as the
    student knows it). sys.exit(0) and a plain end write nothing."""
    from grader.diagnosis import exit_story
    program = tmp_path / "impl" / "4_exit" / "chat_client.py"
    program.parent.mkdir(parents=True)
    program.write_text("import os, sys\n\ndef main(status):\n    if status == 9:\n"
                       "        os._exit(9)\n    sys.exit(status)\n\n"
                       "main(int(sys.argv[1]))\n", encoding="utf-8")
    told = what_it_tells(program, (0, 3, 9))
    assert told[0] == ""
    assert told[3] == ("[chat kit] sys.exit(3) at %s line 6 in main(): sys.exit(status)\n"
                       % program)
    assert told[9].startswith("[chat kit] os._exit(9) at %s line 5 in main(): os._exit(9)"
                              % program)

    assert exit_story(ExitedClient(program, 3, told[3]), Conversation()) == (
        "the client exited with status 3 (sys.exit(3) at impl/4_exit/chat_client.py line 6 "
        "in main(): `sys.exit(status)`)")


def test_a_raised_system_exit_names_the_line_that_raised_it(tmp_path):
    """`raise SystemExit(4)` written by the student has no traceback and no sys.exit() to
    wrap: the startup hook writes the line of its own that raised it, in a client and
    in a server, once, and the diagnosis names it. A SystemExit(0), one the program
    catches, and a sys.exit() (told by its own wrapper) write no such line."""
    from grader.diagnosis import exit_story
    source = ("import sys\n\ndef leave(status):\n    if status == 5:\n"
              "        sys.exit(5)\n    raise SystemExit(status)\n\n"
              "def main(status):\n    try:\n        leave(7)\n    except SystemExit:\n"
              "        pass\n    leave(status)\n\nmain(int(sys.argv[1]))\n")
    for name in ("chat_client.py", "chat_server.py"):
        program = tmp_path / "impl" / "4_exit" / name
        program.parent.mkdir(parents=True, exist_ok=True)
        program.write_text(source, encoding="utf-8")
        told = what_it_tells(program, (0, 4, 5))
        assert told[4] == ("[chat kit] raise SystemExit(4) at %s line 6 in leave(): "
                           "raise SystemExit(status)\n" % program), told[4]
        assert told[5] == ("[chat kit] sys.exit(5) at %s line 5 in leave(): sys.exit(5)\n"
                           % program), told[5]
        assert "SystemExit" not in told[0], told[0]

    told = ("[chat kit] raise SystemExit(4) at %s line 6 in leave(): "
            "raise SystemExit(status)\n" % program.with_name("chat_client.py"))
    assert exit_story(ExitedClient(program.with_name("chat_client.py"), 4, told),
                      Conversation()) == (
        "the client exited with status 4 (raise SystemExit(4) at impl/4_exit/chat_client.py "
        "line 6 in leave(): `raise SystemExit(status)`)")


def test_a_server_that_ends_by_itself_names_the_lines_it_returned_from(tmp_path):
    """A chat_server.py whose loop is left by a break ends with status 0 and no
    traceback: the startup hook writes the line its loop's function (the one that made
    the most calls) returned from, and the last of its own to return; the diagnosis puts
    them in the exit's story, paths as the student knows them."""
    from grader.diagnosis import exit_story
    program = tmp_path / "impl" / "1_echo" / "chat_server.py"
    program.parent.mkdir(parents=True)
    program.write_text("def step():\n    return 1\n\n\ndef serve():\n    clients = 3\n"
                       "    while True:\n        step()\n        clients -= 1\n"
                       "        if not clients:\n            break\n\n\n"
                       "def main():\n    serve()\n\n\nmain()\n", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(KIT / "grader" / "startup"))
    env.pop("CHATKIT_WHERE", None)
    import subprocess
    run = subprocess.run([sys.executable, str(program)], env=env, capture_output=True,
                         timeout=30)
    assert run.returncode == 0
    stderr = run.stderr.decode()
    assert stderr == ("[chat kit] it ended after serve() returned at {0} line 11: break, then "
                      "main() returned at {0} line 15: serve()\n".format(program)), stderr

    class Ended:
        label, asked_to_end, limit_note = "server", False, ""
        argv = [sys.executable, "-b", str(program), "--port", "5"]

        def exit_status(self):
            return 0

        def stderr(self):
            return run.stderr

    story = exit_story(Ended(), Conversation())
    assert story == ("the server exited with status 0 (no error: it ended itself); it ended "
                     "after serve() returned at impl/1_echo/chat_server.py line 11: `break`, "
                     "then main() returned at impl/1_echo/chat_server.py line 15: `serve()`"), story
    # A client, or any program not named chat_server.py, writes nothing of the kind.
    client = program.with_name("chat_client.py")
    client.write_text(program.read_text(encoding="utf-8"), encoding="utf-8")
    assert subprocess.run([sys.executable, str(client)], env=env, capture_output=True,
                          timeout=30).stderr == b""
