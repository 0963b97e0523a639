"""`python -m grader load`: the load test runs, checks every message, and cleans up.

Each test runs the real command as its own process (in its own session, so
that whatever it started can be found afterwards) against a copy of a real
server, for a second or two. Timing is not judged here: the comparison of
designs is a benchmark (docs/teachers.md § Load), not a test.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gradekit import IMPLS, KIT, LINUX, left_running, processes_mentioning, wait_until

SOLUTIONS = KIT / "solutions"
FIELDS = {"stage", "clients", "clients_connected", "seconds", "sent", "delivered", "lost",
          "wrong", "throughput", "latency_ms"}
LIMIT = 60   # seconds any one run of the tool may take here (a stuck tool fails, never hangs)
POSIX = os.name == "posix"


def copy_impl(tmp_path: Path, source: Path, *stages: str) -> Path:
    """A copy of `stages` of an implementation (with the kit's protocol.py two folders
    up): its path is unique, so any process left behind can be found by it."""
    shutil.copy(KIT / "protocol.py", tmp_path / "protocol.py")
    impl = tmp_path / "impl"
    for stage in stages:
        shutil.copytree(source / stage, impl / stage)
    extra = source / "faulty_chat.py"   # the faulty design keeps its code next to the stages
    if extra.exists():
        shutil.copy(extra, impl / extra.name)
    return impl


def session_members(session: int) -> list[str]:
    """Linux: processes still alive in a session (the tool's workers would be there)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and fields[0] != "Z" and int(fields[3]) == session:
            found.append(entry.name)
    return found


def run_load(*args: str, env: dict | None = None, preexec=None) -> subprocess.CompletedProcess:
    """Run the tool; afterwards nothing it started may still be running."""
    proc = subprocess.Popen([sys.executable, "-m", "grader", "load", *args], cwd=KIT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=dict(os.environ, **(env or {})),
                            start_new_session=POSIX, preexec_fn=preexec)
    try:
        out, err = proc.communicate(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL) if POSIX else proc.kill()
        out, err = proc.communicate()
        pytest.fail("the load tool ran more than %d s:\n%s\n%s" % (LIMIT, out, err))
    result = subprocess.CompletedProcess(proc.args, proc.returncode,
                                         out.decode("utf-8", "replace"),
                                         err.decode("utf-8", "replace"))
    if LINUX:
        left = left_running(lambda: session_members(proc.pid))   # a moment to finish exiting
        assert not left, "the tool left its workers running: %s\n%s" % (left, result.stdout)
    return result


def no_server_left(impl: Path) -> None:
    left = left_running(lambda: processes_mentioning(str(impl)))
    assert not left, "the tool left the server running: %s" % left


def read_json(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert set(data) == FIELDS, "the JSON's fields: %s" % sorted(data)
    assert set(data["latency_ms"]) == {"p50", "p99"}
    return data


def test_stage3_hundred_clients_nothing_lost_or_wrong(tmp_path, report):
    impl = copy_impl(tmp_path, SOLUTIONS, "3_messaging")
    result = run_load("--impl", str(impl), "--stage", "3", "--clients", "100",
                      "--seconds", "2", "--json", str(tmp_path / "load.json"))
    no_server_left(impl)
    assert result.returncode == 0, result.stdout + result.stderr
    data = read_json(tmp_path / "load.json")
    assert data["stage"] == 3 and data["clients"] == 100
    assert data["clients_connected"] == 100, result.stdout
    assert data["lost"] == 0 and data["wrong"] == 0, result.stdout
    assert data["sent"] == data["delivered"] > 0, result.stdout
    assert 1.9 <= data["seconds"] <= 3.0
    assert data["throughput"] > 0
    assert 0 < data["latency_ms"]["p50"] <= data["latency_ms"]["p99"]
    # What a user reads: the figures, the progress, and who set the pace.
    for word in ("Clients:", "Throughput:", "Latency:", "CPU:", "Limit:"):
        assert word in result.stdout, result.stdout
    assert "delivered" in result.stderr and "/s" in result.stderr, "no progress line"
    report("load, reference stage 3, 100 clients, 2 s (CI machine): %s deliveries/s, "
           "p50 %s ms, p99 %s ms" % (data["throughput"], data["latency_ms"]["p50"],
                                     data["latency_ms"]["p99"]))


def test_stage1_echo(tmp_path):
    impl = copy_impl(tmp_path, SOLUTIONS, "1_echo")
    result = run_load("--impl", str(impl), "--stage", "1", "--clients", "20",
                      "--seconds", "1", "--in-flight", "3", "--json", str(tmp_path / "load.json"))
    no_server_left(impl)
    assert result.returncode == 0, result.stdout + result.stderr
    data = read_json(tmp_path / "load.json")
    assert data["clients_connected"] == 20
    assert data["sent"] == data["delivered"] > 0 and data["lost"] == data["wrong"] == 0


# Before it listens, this server reserves what a thread-per-client server holding
# 1,000 clients reserves (2,000 threads, each with an 8 MB stack: 16.8 GB of
# address space, of which it uses little); then it is the reference echo server.
MANY_THREADS_SERVER = """
import runpy, sys, threading
threading.stack_size(8 * 1024 * 1024)
idle = threading.Event()
for _ in range(2100):
    threading.Thread(target=idle.wait, daemon=True).start()
sys.argv[0] = {reference!r}
sys.path.insert(0, {folder!r})   # its modules: server.py
runpy.run_path({reference!r}, run_name="__main__")
"""


def test_a_server_may_reserve_a_thread_stack_per_client(tmp_path):
    """A thread-per-client server reserving stacks for 1,000 clients is not stopped
    (an address-space limit of 16 GB stopped it at about 950 clients)."""
    impl = tmp_path / "impl"
    (impl / "1_echo").mkdir(parents=True)
    (impl / "1_echo" / "chat_server.py").write_text(MANY_THREADS_SERVER.format(
        reference=str(SOLUTIONS / "1_echo" / "chat_server.py"),
        folder=str(SOLUTIONS / "1_echo")))
    result = run_load("--impl", str(impl), "--stage", "1", "--clients", "10",
                      "--seconds", "0.5", "--json", str(tmp_path / "load.json"))
    no_server_left(impl)
    assert result.returncode == 0, result.stdout + result.stderr
    assert read_json(tmp_path / "load.json")["clients_connected"] == 10


@pytest.mark.parametrize("fault, field", [("msg_text_first_word", "wrong"), ("no_sent", "lost")])
def test_a_faulty_server_is_caught(tmp_path, fault, field):
    """The checks can fail: a server that cuts the text, or never replies SENT."""
    impl = copy_impl(tmp_path, IMPLS / "faulty", "3_messaging")
    result = run_load("--impl", str(impl), "--stage", "3", "--clients", "10",
                      "--seconds", "0.5", "--json", str(tmp_path / "load.json"),
                      env={"CHATKIT_FAULT": fault})
    no_server_left(impl)
    assert result.returncode == 1, result.stdout + result.stderr
    data = read_json(tmp_path / "load.json")
    assert data[field] > 0, result.stdout
    if field == "wrong":
        assert "wrong: " in result.stdout and "expected" in result.stdout, result.stdout


def test_refused_clients_are_counted_with_the_reason(tmp_path):
    with socket.socket() as probe:   # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_load("--port", str(port), "--stage", "3", "--clients", "4", "--seconds", "0.2",
                      "--json", str(tmp_path / "load.json"))
    assert result.returncode == 1
    assert read_json(tmp_path / "load.json")["clients_connected"] == 0
    assert "4 not: connection refused" in result.stdout, result.stdout


def lower_open_files_limit():   # runs in the tool's process, before it starts
    import resource
    resource.setrlimit(resource.RLIMIT_NOFILE, (150, 150))


@pytest.mark.skipif(not POSIX, reason="open-files limits (RLIMIT_NOFILE) are POSIX")
def test_its_own_open_files_limit_is_told_then_avoided(tmp_path):
    """With 150 files per process, one worker cannot hold 200 clients, and says it is
    its own limit; left to choose, the tool uses enough workers to hold them all."""
    impl = copy_impl(tmp_path, SOLUTIONS, "3_messaging")
    server = subprocess.Popen([sys.executable, str(impl / "3_messaging" / "chat_server.py"),
                               "--host", "127.0.0.1", "--port", "0"], stdout=subprocess.DEVNULL)
    try:
        port = wait_until(lambda: listening_port(server.pid), timeout=5)
        assert port, "the server did not start listening"
        common = ["--port", str(port), "--stage", "3", "--clients", "200", "--seconds", "0.3"]
        one = run_load(*common, "--workers", "1", preexec=lower_open_files_limit)
        assert one.returncode == 1
        assert "this tool's open-files limit (150 per process)" in one.stdout, one.stdout
        assert "not the server's doing" in one.stdout
        auto = run_load(*common, "--json", str(tmp_path / "auto.json"),
                        preexec=lower_open_files_limit)
        assert auto.returncode == 0, auto.stdout + auto.stderr
        assert read_json(tmp_path / "auto.json")["clients_connected"] == 200
        assert "3 worker processes" in auto.stdout, auto.stdout   # 200 clients / (150 - 64)
    finally:
        server.kill()
        server.wait(5)


def listening_port(pid: int):
    """The port process `pid` listens on (it was given port 0), or None: Linux through
    /proc, elsewhere (macOS) through lsof."""
    if not LINUX:
        listed = subprocess.run(["lsof", "-a", "-p", str(pid), "-iTCP", "-sTCP:LISTEN", "-P",
                                 "-n", "-Fn"], capture_output=True, text=True, timeout=30)
        ports = [int(line.rsplit(":", 1)[1]) for line in listed.stdout.splitlines()
                 if line.startswith("n") and ":" in line]
        return ports[0] if ports else None
    inodes = set()
    for fd in Path("/proc/%d/fd" % pid).iterdir():
        try:
            inodes.add(os.readlink(fd))
        except OSError:
            pass
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and "socket:[%s]" % fields[9] in inodes:
            return int(fields[1].rsplit(":", 1)[1], 16)
    return None


@pytest.mark.parametrize("args, says", [
    (["--impl", "solutions", "--stage", "2"], "stage 2 (naming) has no traffic between clients"),
    (["--impl", "solutions", "--stage", "7"], "--stage 7: no such stage"),
    (["--stage", "3"], "one of the arguments --impl --port is required"),
    (["--impl", "solutions", "--stage", "3", "--clients", "1"], "--clients must be at least 2"),
    (["--impl", "solutions", "--stage", "3", "--seconds", "0"], "--seconds must be more than 0"),
    (["--impl", "nowhere", "--stage", "3"], "chat_server.py does not exist"),
    (["--impl", "solutions", "--stage", "3", "--clients", "4", "--workers", "3"],
     "--workers must be between 1 and 2"),
])
def test_usage_errors_give_one_clear_line(args, says, capsys, monkeypatch):
    """In this process (a usage error starts nothing): exit status 2, one line."""
    from grader.teach import load
    monkeypatch.chdir(KIT)
    assert load.main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and says in lines[0], err


def test_usage_error_through_the_command():
    result = run_load("--impl", "solutions", "--stage", "2")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("python -m grader load: stage 2"), result.stderr


@pytest.mark.parametrize("server_busy, workers_busy, says", [
    (0.99, [0.40], "the server: its processor time was all used"),
    (0.50, [0.97], "THIS TOOL, not the server"),
    (0.50, [0.40], "the round trips set the pace"),
    # --port: the server's CPU time is unknown, so the tool must not claim it was idle.
    (None, [0.40], "the server's CPU time is unknown here"),
    (None, [0.97], "THIS TOOL, not the server"),
])
def test_the_limit_is_named_from_what_was_measured(server_busy, workers_busy, says):
    from argparse import Namespace
    from grader.teach import load
    args = Namespace(workers=len(workers_busy), in_flight=1)
    assert says in load.verdict(args, server_busy, workers_busy, crowded=False)
