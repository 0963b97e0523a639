"""Debugging a failing check: the grader runs one check against a server it did not start.

Each test starts a server itself (the reference, or tests/impls/faulty with one planted
mistake) on a free port, as a student starts theirs in a debugger, then runs the real
grader with `--check N.M --attach 127.0.0.1:PORT` and judges its results.json and output.
The grader is given an implementation whose programs can't start (they exit at once),
so an attached check that passes has talked to the server the test started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from gradekit import IMPLS, KIT, POSIX, grade, wait_until
from grader.stages import STAGES
from grader.wire import essentials

SOLUTIONS = KIT / "solutions"
FAULTY = IMPLS / "faulty"
START_LIMIT = 10.0    # seconds a server started by a test may take to listen
BREAKPOINT = 3.0      # seconds the "student" keeps the server stopped: longer than a
                      # normal grading's 2 s wait for a reply


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def listening_quietly(port: int) -> bool:
    """Whether something listens on `port`, without connecting to it (Linux: /proc;
    elsewhere a connection, closed at once)."""
    if not sys.platform.startswith("linux"):
        return listening(port)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        if any(f.split()[3] == "0A" and int(f.split()[1].rsplit(":", 1)[1], 16) == port
               for f in lines):
            return True
    return False


@pytest.fixture
def start_server():
    """start_server(impl, stage, fault=None) -> (process, port): a server the test started,
    as a student would, listening; stopped at teardown."""
    started = []

    def start(impl, stage, fault=None):
        port = free_port()
        env = dict(os.environ, CHATKIT_FAULT=fault or "")
        proc = subprocess.Popen([sys.executable, str(impl / stage / "chat_server.py"),
                                 "--host", "127.0.0.1", "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, env=env)
        started.append(proc)
        # Readiness: one connection, closed at once (a client that leaves, as any may).
        assert wait_until(lambda: listening(port) or proc.poll() is not None, START_LIMIT) \
            and proc.poll() is None, "the server did not start listening"
        return proc, port

    yield start
    for proc in started:
        if POSIX:
            os.kill(proc.pid, signal.SIGCONT)   # a stopped process can't take SIGKILL's news
        proc.kill()
        proc.wait(10)


@pytest.fixture(scope="module")
def unstartable(tmp_path_factory):
    """An implementation whose every program exits at once with status 3."""
    impl = tmp_path_factory.mktemp("unstartable")
    for stage in STAGES:
        (impl / stage).mkdir()
        for script in ("chat_server.py", "chat_client.py"):
            (impl / stage / script).write_text("raise SystemExit(3)\n")
    return impl


def attached(impl, check: str, port: int, *args: str):
    return grade(impl, "--check", check, "--attach", "127.0.0.1:%d" % port, *args, limit=120)


def alongside(function, *args, **kwargs):
    """Start function(*args, **kwargs) in a thread (a normal grading, beside the attached
    one); returns a function that waits for its result."""
    with_result = {}

    def run():
        try:
            with_result["value"] = function(*args, **kwargs)
        except BaseException as error:   # re-raised in the test's own thread
            with_result["error"] = error

    thread = threading.Thread(target=run)
    thread.start()

    def result():
        thread.join()
        if "error" in with_result:
            raise with_result["error"]
        return with_result["value"]
    return result


def only_test(run, number: str) -> dict:
    tests = run.results["tests"]
    assert [t["number"] for t in tests] == [number], run.output[-3000:]
    return tests[0]


# A stage's basic check, a stall, a refusal, a rename, a flood, names freed after EXIT.
PASSING = [("1_echo", "1.1"), ("1_echo", "1.9"), ("2_naming", "2.1"), ("2_naming", "2.3"),
           ("2_naming", "2.4"), ("3_messaging", "3.1"), ("3_messaging", "3.10"),
           ("4_exit", "4.1"), ("4_exit", "4.2")]


@pytest.mark.parametrize("stage, number", PASSING)
def test_attached_check_passes_on_the_reference(start_server, unstartable, stage, number):
    _, port = start_server(SOLUTIONS, stage)
    run = attached(unstartable, number, port)
    test = only_test(run, number)
    assert test["status"] == "passed" and test["score"] == test["max_score"] > 0, test["output"]
    assert run.status == 0
    # The conversation is shown as it happens, from the attached server's first line.
    assert "(attached to your server at 127.0.0.1:%d" % port in run.output


# (stage, check, planted mistake): a stall (judged with a normal grading's waits, so
# the two texts match), refusals, a rename, a push, a BYE.
FAULTS = [("1_echo", "1.9", "blocking_payload_recv", ["--patience", "1"]),
          ("1_echo", "1.7", "error_misspelt", []),
          ("2_naming", "2.3", "duplicate_names", []),
          ("2_naming", "2.4", "rename_keeps_old", []),
          ("3_messaging", "3.1", "bob_sent_hi", []),
          ("4_exit", "4.1", "no_bye", [])]


def before_the_hint(lines: list[str]) -> list[str]:
    """A failure's Expected and Got lines: what comes before its Where: and Hint: lines."""
    end = next(i for i, line in enumerate(lines) if line.startswith(("Where:", "Hint:")))
    return lines[:end]


@pytest.mark.parametrize("stage, number, fault, extra", FAULTS)
def test_attached_fault_fails_as_in_a_normal_grading(start_server, unstartable, stage, number,
                                                     fault, extra):
    _, port = start_server(FAULTY, stage, fault)
    normal = alongside(grade, FAULTY, "--check", number, env={"CHATKIT_FAULT": fault})
    run = attached(unstartable, number, port, *extra)
    test = only_test(run, number)
    assert test["status"] == "failed" and test["score"] == 0, test["output"]
    usual = only_test(normal(), number)
    assert usual["status"] == "failed", usual["output"]
    said, usually = essentials(test["output"], 20), essentials(usual["output"], 20)
    assert said[0].startswith("Expected:"), test["output"]
    if any(line.startswith("Where:") for line in usually):
        # A server the grader started is asked where it waits (Where:, and a hint for that
        # call); one the student started is not (their debugger shows where it is): the
        # rest, Expected and Got, is the same.
        said, usually = before_the_hint(said), before_the_hint(usually)
    assert said == usually, "attached:\n%s\nnormal grading:\n%s" % (test["output"],
                                                                     usual["output"])
    assert "Hint:" in test["output"]


@pytest.mark.parametrize("number, why", [("1.12", "CPU"), ("4.8", "Ctrl-C")])
def test_check_that_cannot_run_attached_says_so_and_scores_nothing(start_server, unstartable,
                                                                   number, why):
    _, port = start_server(SOLUTIONS, "1_echo" if number == "1.12" else "4_exit")
    run = attached(unstartable, number, port)
    test = only_test(run, number)
    assert test["status"] == "failed" and test["score"] == 0 < test["max_score"]
    assert test["output"].startswith("Not run attached: check %s cannot run" % number)
    assert why in test["output"] and "python -m pytest grader --check %s" % number \
        in test["output"]
    assert run.status != 0


def test_a_breakpoint_longer_than_a_normal_wait(start_server, unstartable):
    """The server is stopped (SIGSTOP, as a debugger's breakpoint holds it) for longer than
    a normal grading waits for a reply, then continued: the attached check still passes."""
    if not POSIX:
        pytest.skip("SIGSTOP stands in for a breakpoint on POSIX only")
    proc, port = start_server(SOLUTIONS, "2_naming")
    os.kill(proc.pid, signal.SIGSTOP)
    started = time.monotonic()
    command = [sys.executable, "-m", "pytest", "grader", "--impl", str(unstartable),
               "--check", "2.4", "--attach", "127.0.0.1:%d" % port, "-q",
               "-p", "no:cacheprovider"]
    grader = subprocess.Popen(command, cwd=KIT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        time.sleep(BREAKPOINT)   # the student at the breakpoint: the point of this test
        os.kill(proc.pid, signal.SIGCONT)
        output, _ = grader.communicate(timeout=120)
    finally:
        if grader.poll() is None:
            grader.kill()
            grader.wait()
    text = output.decode("utf-8", "replace")
    assert grader.returncode == 0, text[-3000:]
    assert "✓ 2.4" in text and time.monotonic() - started >= BREAKPOINT


def test_silence_is_not_stretched(start_server, unstartable):
    """Check 4.4 ends with a wait for silence (nothing after BYE, 0.3 s): patience
    stretches only what must come, so an attached run takes seconds, not 0.3 × 300 s."""
    _, port = start_server(SOLUTIONS, "4_exit")
    run = attached(unstartable, "4.4", port)
    assert only_test(run, "4.4")["status"] == "passed"
    assert run.seconds < 45, "an attached 4.4 took %.0f s" % run.seconds


def test_one_check_per_attached_run(start_server, unstartable):
    _, port = start_server(SOLUTIONS, "1_echo")
    command = [sys.executable, "-m", "pytest", "grader", "--impl", str(unstartable),
               "--stage", "1", "--attach", str(port), "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(command, cwd=KIT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "--attach runs one check at a time" in done.stderr
    assert "restart your server" in done.stderr
    assert "1.1 " not in done.stdout   # no score table of checks that never ran


def test_nothing_listening_is_told(unstartable):
    """Attached to a port where nothing listens (patience 1: 5 s), the check fails saying
    to start the server first; the grader started none of its own."""
    run = attached(unstartable, "1.1", free_port(), "--patience", "1")
    test = only_test(run, "1.1")
    assert test["status"] == "failed"
    assert "Expected: your server accepts a connection at 127.0.0.1:" in test["output"]
    assert "start your server first" in test["output"]


def test_show_exchange_lists_and_runs_nothing(unstartable):
    run = grade(unstartable, "--check", "1.9,3.10,1.20", "--show-exchange")
    assert run.status == 0, run.output[-2000:]
    assert run.results["tests"] == []
    text = run.output
    assert "1.9 A client stalled mid-message does not delay others (server check, 2 points)" \
        in text
    assert "One client sends half a message and goes quiet; another still gets its echo." in text
    assert "bob never reads; alice sends him about 8 MB" in text
    assert "Design." not in text     # the notes for the kit's developers are left out
    assert "typing 'hello' sends '0005hello'" in text
    assert "--check 1.9 --attach 7777" in text


def test_check_selects_by_number():
    run = grade(SOLUTIONS, "--check", "2.4", "--check", "1.3")
    assert sorted(t["number"] for t in run.results["tests"]) == ["1.3", "2.4"]
    assert run.score == run.max_score > 0
    bad = grade(SOLUTIONS, "--check", "1.99")
    assert bad.status == 4 and "--check 1.99: no such check" in bad.output


# --- the client's checks: the student's client, started through grader/keyboard.py -------

def attached_client(impl, stage: str, number: str, fault: str = "", *extra: str):
    """The grader, attached for a client check, plays the server on a free port; the
    'student' then starts impl's client through `python -m grader.keyboard PORT SCRIPT`
    (as in a debugger). Returns the grader's Grade."""
    port = free_port()
    env = dict(os.environ, CHATKIT_FAULT=fault)
    keyboard = []

    def start_client():
        # The grader listens before it runs the check; the keyboard retries until it does.
        keyboard.append(subprocess.Popen(
            [sys.executable, "-m", "grader.keyboard", str(port),
             str(impl / stage / "chat_client.py")], cwd=KIT, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    starter = threading.Thread(target=start_client)
    starter.start()
    try:
        return grade(SOLUTIONS, "--check", number, "--attach", "127.0.0.1:%d" % port, *extra,
                     limit=120)
    finally:
        starter.join()
        for proc in keyboard:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("stage, number", [("1_echo", "1.20"), ("1_echo", "1.24"),
                                           ("4_exit", "4.29")])
def test_attached_client_check_passes_on_the_reference(stage, number):
    run = attached_client(SOLUTIONS, stage, number)
    test = only_test(run, number)
    assert test["status"] == "passed" and test["score"] == test["max_score"] > 0, test["output"]
    assert "python -m grader.keyboard" in run.output


@pytest.mark.parametrize("stage, number, fault", [
    ("1_echo", "1.20", "client_sends_newline"),
    ("1_echo", "1.22", "client_crlf"),
    ("1_echo", "1.26", "client_traceback_eof")])
def test_attached_client_fault_fails_as_in_a_normal_grading(stage, number, fault):
    normal = alongside(grade, FAULTY, "--check", number, env={"CHATKIT_FAULT": fault})
    run = attached_client(FAULTY, stage, number, fault)
    test = only_test(run, number)
    assert test["status"] == "failed" and test["score"] == 0, test["output"]
    usual = only_test(normal(), number)
    said, usually = essentials(test["output"], 20), essentials(usual["output"], 20)
    assert said[0].startswith("Expected:"), test["output"]
    if any(line.startswith("Where:") for line in usually):
        # A server the grader started is asked where it waits (Where:, and a hint for that
        # call); one the student started is not (their debugger shows where it is): the
        # rest, Expected and Got, is the same.
        said, usually = before_the_hint(said), before_the_hint(usually)
    assert said == usually, "attached:\n%s\nnormal grading:\n%s" % (test["output"],
                                                                     usual["output"])


def test_a_client_started_on_its_own_is_told_to_use_the_keyboard():
    """A client started directly (not through grader/keyboard.py) can't be typed into:
    the check says how to start it instead."""
    port = free_port()
    command = [sys.executable, "-m", "pytest", "grader", "--impl", str(SOLUTIONS), "--check",
               "1.20", "--attach", str(port), "--patience", "1", "-q", "-p", "no:cacheprovider"]
    grader = subprocess.Popen(command, cwd=KIT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    client = None
    try:
        assert wait_until(lambda: listening_quietly(port), START_LIMIT), "the grader never listened"
        client = subprocess.Popen([sys.executable, str(SOLUTIONS / "1_echo" / "chat_client.py"),
                                   "--port", str(port)], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        output, _ = grader.communicate(timeout=120)
    finally:
        for proc in (grader, client):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
    text = output.decode("utf-8", "replace")
    assert grader.returncode == 1, text[-3000:]
    assert "did not say it came from grader/keyboard.py" in text
    assert "python -m grader.keyboard %d stages/1_echo/chat_client.py" % port in text
    # the banner's wait is a normal wait (2 s) times the patience, as for the server's checks
    assert "The grader waits up to 2 s for each thing your client must do" in text, text[-3000:]


def test_the_banner_says_the_wait_the_guide_says():
    """With the default patience a wait is 10 minutes, for a client check as for a
    server check, as docs/students.md § Debugging a failing check says."""
    from grader.attach import PATIENCE, minutes
    from grader.wire import WAIT
    guide = (KIT / "docs" / "students.md").read_text(encoding="utf-8")
    assert minutes(WAIT * PATIENCE) == "10 minutes"
    assert "waits up to 10 minutes for each reply" in guide


# A client whose thread wakes after the client ended (under pdb, which runs the program
# again in the same process): it writes to the socket the ended client closed.
LATE_THREAD_CLIENT = """
import socket, threading, time
ours, theirs = socket.socketpair()
def wake_later():
    time.sleep(0.3)
    ours.sendall(b"!")   # the main thread closed both ends: an OSError
threading.Thread(target=wake_later, daemon=True).start()
ours.close()
theirs.close()
"""
# The process going on after the client, as pdb's does: it waits for the client's threads.
AS_PDB_DOES = """
import sys, threading
import grader.keyboard
try:
    grader.keyboard.main(sys.argv[1:])
except SystemExit:
    pass
for thread in threading.enumerate():
    if thread is not threading.main_thread():
        thread.join(5)
print("went on", file=sys.stderr)
"""


def test_a_client_thread_waking_after_the_end_shows_no_traceback(tmp_path):
    """Under `python -m pdb -m grader.keyboard ...` the process outlives the client; a
    thread of the ended client that then fails on its closed sockets (the stdin reader's
    doorbell: a BrokenPipeError) prints no traceback."""
    script = tmp_path / "chat_client.py"
    script.write_text(LATE_THREAD_CLIENT, encoding="utf-8")
    with socket.socket() as grader_end:
        grader_end.bind(("127.0.0.1", 0))
        grader_end.listen()
        port = grader_end.getsockname()[1]
        run = subprocess.Popen([sys.executable, "-c", AS_PDB_DOES, str(port), str(script)],
                               cwd=KIT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        grader_end.settimeout(30)
        connection, _ = grader_end.accept()
        with connection:
            connection.settimeout(30)
            while connection.recv(4096):   # the client's records, up to its exit
                pass
            _, stderr = run.communicate(timeout=30)
    text = stderr.decode("utf-8", "replace")
    assert "went on" in text, text
    assert "Traceback" not in text, text
