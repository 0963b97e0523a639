"""The grader's limits on student programs hold, and cost a correct program nothing.

Three abusive programs of tests/impls/pathological, each otherwise the reference
server, are graded on all four stages by the real grader while a monitor
watches the machine (every MONITOR_PERIOD s, through /proc): one prints debug
lines in a loop, one keeps allocating memory, one starts processes in a loop
(and a client that prints in a loop, on stage 1: the client checks' side). For
each: the grader's temporary folder stays under 100 MB, no program goes past the
memory limit, at most about a hundred processes are alive at once, nothing is
left running, and the checks that failed say which limit stopped the program.

A correct program is never stopped: the thread-per-client design holds a
hundred clients within the limits (test_pathological.py proves the chatty
programs keep full marks, and test_grader.py the reference). `--run-as nobody`
(when the tests run as root, as in CI): the reference keeps full marks, its
programs run as nobody and can neither read nor write the grader's results,
and what cannot work is refused with one clear line.

The watchdog's own failure (a look that raises) is said, and leaves no writer
paused and the disk limit on.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from gradekit import IMPLS, KIT, LINUX, STAGES, grade_many, left_running, wait_until

sys.path.insert(0, str(KIT))
from grader import limits, programs, serverside, users  # noqa: E402  (the kit's root must be on the path first)

pytestmark = pytest.mark.skipif(not LINUX, reason="the monitor reads /proc (Linux)")

PATHOLOGICAL = IMPLS / "pathological"
DEFAULTS = limits.Limits()
MB = limits.MB

# name: the grader option that the failures must name.
ABUSIVE = {
    "server-prints-forever": "--output-limit",
    "server-grows-forever": "--memory-limit",
    "server-forks-forever": "--max-processes",
    "client-prints-forever": "--output-limit",
}
ONLY_STAGES = {"client-prints-forever": ("--stage", "1")}
DISK_LIMIT = 100 * MB          # the grader's temporary folder, at its fullest
# The watchdog looks every 50 ms; between two looks the grower adds one step (64 MiB,
# see pathology.py): that is how far past the limit it can be seen.
MEMORY_SLACK = 64 * 1024 * 1024
# Alive at once, all programs of one grading. The watchdog stops a fork loop past
# --max-processes (50) at its next look (5 ms apart while a program forks), so a loop seen
# between two looks goes past it: 50-124 seen on 2 cores, once 147 within the whole suite.
# As root the kernel holds the grading's user to --max-processes + 200 tasks, exactly
# (docs/teachers.md): that is the bound then; elsewhere twice the watchdog's limit.
PROCESS_LIMIT = 100
GRADING_LIMIT = 90.0           # seconds: one grading of all four stages, under load
MONITOR_PERIOD = 0.05
LEFTOVER_POLL = 3.0
RUN = "CHATKIT_CONTAINMENT_RUN"   # in the environment of each grading: which one it is


class Monitor:
    """Watches the processes and temporary folder of several gradings at once."""

    def __init__(self, folders: dict[str, Path]) -> None:
        self.folders = folders          # grading name -> its TMPDIR
        self.disk = {name: 0 for name in folders}
        self.processes = {name: 0 for name in folders}
        self.memory = {name: (0, "") for name in folders}   # (bytes, command line)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Monitor":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.stopped.wait(MONITOR_PERIOD):
            counts = {name: 0 for name in self.folders}
            for name, pid, command, resident in programs_of(set(self.folders)):
                counts[name] += 1
                if resident > self.memory[name][0]:
                    self.memory[name] = (resident, command)
            for name, folder in self.folders.items():
                self.processes[name] = max(self.processes[name], counts[name])
                self.disk[name] = max(self.disk[name], disk_used(folder))


def programs_of(names: set[str]):
    """(grading name, pid, command line, resident bytes) of every live process that a
    grading of `names` started (the grader itself left out)."""
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            environ = Path(entry.path, "environ").read_bytes().split(b"\0")
            name = next((e.split(b"=", 1)[1].decode() for e in environ
                         if e.startswith(RUN.encode() + b"=")), None)
            if name not in names:
                continue
            command = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
            size, resident = Path(entry.path, "statm").read_text().split()[:2]
        except (OSError, ValueError):
            continue
        if " -m pytest " in command or size == "0":   # the grader; a zombie
            continue
        yield name, int(entry.name), command, int(resident) * page


def disk_used(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for file in files:
            try:
                total += os.lstat(os.path.join(root, file)).st_blocks * 512
            except OSError:
                pass
    return total


# --- where every user can read: the kit for --run-as, and whether it can be tested ---

def nobody_uid() -> int | None:
    """The user id of nobody; None if there is no such user (or no pwd: Windows)."""
    try:
        import pwd
        return pwd.getpwnam("nobody").pw_uid
    except (ImportError, KeyError):
        return None


def can_run_as_nobody() -> str:
    """Why --run-as nobody can't be tested here, or '' if it can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "--run-as needs the tests to run as root (as in CI)"
    uid = nobody_uid()
    if uid is None:
        return "there is no user nobody"
    for python in users.pythons():
        try:
            done = subprocess.run([python, "-c", "import sys; assert sys.version_info >= (3, 10)"],
                                  user=uid, group=uid, extra_groups=[], capture_output=True,
                                  timeout=30, cwd="/")
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return ""
    return "nobody cannot run a Python 3.10 or newer here"


RUN_AS_UNTESTABLE = can_run_as_nobody()
NOBODY_WAIT = 300.0   # seconds: how long a test waits for nobody's processes to end


def wait_until_nobody_is_idle() -> None:
    """--run-as refuses a user that has processes running (another run of these
    tests, on a shared machine): wait, bounded, until nobody has none."""
    from grader import isolation
    assert wait_until(lambda: not isolation.processes_of(nobody_uid()), timeout=NOBODY_WAIT), \
        "nobody still has processes running after %d s: --run-as nobody can't be tested now" % (
            NOBODY_WAIT)
needs_run_as = pytest.mark.skipif(bool(RUN_AS_UNTESTABLE), reason=RUN_AS_UNTESTABLE or "-")


@pytest.fixture(scope="module")
def open_root():
    """A folder every user can enter (the clone itself, and pytest's temporary folders,
    may sit where only root can): the run-as tests work in it."""
    root = Path(tempfile.mkdtemp(prefix="chatkit-open-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def open_kit(open_root):
    """The parts of the kit the programs need, copied where every user can read them."""
    kit = open_root / "kit"
    kit.mkdir()
    shutil.copy(KIT / "protocol.py", kit / "protocol.py")
    shutil.copytree(KIT / "solutions", kit / "solutions",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(PATHOLOGICAL, kit / "tests" / "impls" / "pathological",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for path in [kit, *kit.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return kit


@pytest.fixture
def open_dir(open_root, request):
    """A fresh folder of the open root, for one test (mode 0755, root's)."""
    folder = Path(tempfile.mkdtemp(prefix=request.node.name[:40] + "-", dir=open_root))
    folder.chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def abused(report, tmp_path_factory, open_kit):
    """Each abusive program graded on all four stages (the client on stage 1: its
    checks are the same in every stage), and the reference graded --run-as nobody
    where that can be tested, three gradings at a time under the monitor."""
    names = list(ABUSIVE) + ([] if RUN_AS_UNTESTABLE else ["run-as"])
    folders = {name: tmp_path_factory.mktemp("tmpdir-" + name) for name in names}
    jobs = [(PATHOLOGICAL, ONLY_STAGES.get(name, ()),
             {"CHATKIT_PATHOLOGY": name, RUN: name, "TMPDIR": str(folders[name])})
            for name in ABUSIVE]
    if "run-as" in names:
        wait_until_nobody_is_idle()
        jobs.append((open_kit / "solutions", ("--run-as", "nobody"),
                     {RUN: "run-as", "TMPDIR": str(folders["run-as"])}))
    with Monitor(folders) as monitor:
        runs = dict(zip(names, grade_many(jobs, workers=3)))
    left = left_running(lambda: [(name, pid, command) for name, pid, command, _
                                 in programs_of(set(names))], timeout=LEFTOVER_POLL)
    report("containment (limits: %s of output, %s of memory, %d processes):"
           % (limits.size(DEFAULTS.output), limits.size(DEFAULTS.memory), DEFAULTS.processes))
    for name, run in runs.items():
        report("  %-22s %5.1f s  %3d/%-3d  temporary disk %s, most memory %s, most processes %d"
               % (name, run.seconds, run.score, run.max_score, limits.size(monitor.disk[name]),
                  limits.size(monitor.memory[name][0]), monitor.processes[name]))
    return runs, monitor, left


@pytest.mark.parametrize("name", list(ABUSIVE))
def test_grading_ends_and_reports(abused, name):
    run = abused[0][name]
    assert run.seconds <= GRADING_LIMIT, "grading %s took %.1f s" % (name, run.seconds)
    assert run.status in (0, 1), run.output[-3000:]
    assert "INTERNALERROR" not in run.output, run.output[-3000:]
    assert {t["tags"][0] for t in run.tests()} == set(STAGES[:1] if name in ONLY_STAGES else STAGES)


@pytest.mark.parametrize("name", list(ABUSIVE))
def test_temporary_disk_stays_small(abused, name):
    used = abused[1].disk[name]
    assert used < DISK_LIMIT, "%s: the grader's temporary folder reached %s" % (
        name, limits.size(used))


@pytest.mark.parametrize("name", list(ABUSIVE))
def test_no_program_past_the_memory_limit(abused, name):
    resident, command = abused[1].memory[name]
    assert resident <= DEFAULTS.memory + MEMORY_SLACK, (
        "%s: %s was seen using %s" % (name, command, limits.size(resident)))


@pytest.mark.parametrize("name", list(ABUSIVE))
def test_processes_stay_bounded(abused, name):
    from grader import isolation
    alive = abused[1].processes[name]
    bound = (DEFAULTS.processes + limits.THREADS_ALLOWED if LINUX and isolation.possible()
             else PROCESS_LIMIT)
    assert 0 < alive <= bound, "%s: %d processes alive at once (bound %d)" % (name, alive, bound)


def test_nothing_left_running(abused):
    left = abused[2]
    assert not left, "still running after the gradings:\n%s" % "\n".join(map(str, left))


@pytest.mark.parametrize("name", list(ABUSIVE))
def test_failures_name_the_limit(abused, name):
    """The limit stops the abusive program, and wherever that made a check fail, the
    failure says so: which limit, and what to look for (never a bare 'killed by
    SIGKILL'). The other program, the reference, loses nothing."""
    run = abused[0][name]
    option = ABUSIVE[name]
    side = name.split("-")[0]
    failed = [t for t in run.tests() if t["status"] == "failed"
              and not t["output"].startswith("Blocked by")]
    naming = []
    for test in failed:
        output = test["output"]
        is_server_check = int(test["number"].split(".")[1]) < 20
        assert is_server_check == (side == "server"), (
            "%s: the reference %s lost check %s:\n%s" % (
                name, "client" if side == "server" else "server", test["number"], output))
        if "Stopped by the grader" in output:
            for phrase in ("Stopped by the grader: the %s" % side, option, "What to look for:"):
                assert phrase in output, "%s, check %s: %r missing from:\n%s" % (
                    name, test["number"], phrase, output)
            naming.append(test["number"])
        else:   # failed on its own merits (e.g. the CPU it burns), not because it was stopped
            for phrase in ("SIGKILL", "status -9"):
                assert phrase not in output, "%s, check %s: stopped, and not told why:\n%s" % (
                    name, test["number"], output)
    assert naming, "%s scored %d/%d: no failure names the limit" % (
        name, run.score, run.max_score)
    got = [line for number in naming for line in run.output_of(number).splitlines()
           if line.startswith("Got:")]
    assert any("the grader stopped" in line for line in got), (
        "%s: no 'Got:' line says the grader stopped it:\n%s" % (name, "\n".join(got)))


def test_threaded_server_holds_a_hundred_clients_within_the_limits(report):
    """Thread per client, a hundred clients, each echoed: the watchdog never stops it,
    though its threads reserve far more address space than the memory limit."""
    sandbox = programs.Sandbox(limits.Limits())
    port = serverside.free_port()
    server = serverside.launch_server(IMPLS / "threaded" / "1_echo" / "chat_server.py", port,
                                      sandbox)
    clients = []
    try:
        deadline = time.monotonic() + serverside.START_TIMEOUT
        while True:
            try:
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=2))
                break
            except OSError:
                assert time.monotonic() < deadline and server.exit_status() is None, \
                    server.describe()
                time.sleep(0.02)
        clients += [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(99)]
        for number, sock in enumerate(clients):
            sock.sendall(b"%04d" % len(b"c%d" % number) + b"c%d" % number)
        for number, sock in enumerate(clients):
            wanted = b"%04d" % len(b"c%d" % number) + b"c%d" % number
            got = b""
            while len(got) < len(wanted):
                data = sock.recv(len(wanted) - len(got))
                assert data, "client %d: the server closed the connection\n%s" % (
                    number, server.describe())
                got += data
            assert got == wanted
        # Let the watchdog look at it ten times with every thread alive.
        looked = sandbox.watchdog.looks
        assert wait_until(lambda: sandbox.watchdog.looks >= looked + 10, timeout=30)
        virtual = status_field(server.proc.pid, "VmSize")
        assert server.exit_status() is None and not server.limit_note, server.describe()
        assert 0 < server.peak_memory < DEFAULTS.memory
        report("threaded server, 100 clients: %s resident at most, %s of address space "
               "(the memory limit is %s)" % (limits.size(server.peak_memory),
                                             limits.size(virtual), limits.size(DEFAULTS.memory)))
    finally:
        for sock in clients:
            sock.close()
        server.stop()


def status_field(pid: int, field: str) -> int:
    """A size from /proc/PID/status ('VmSize:   812345 kB'), in bytes."""
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def run_grader(impl: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "grader", "--impl", str(impl), "-q",
                           "-p", "no:cacheprovider", *args], cwd=KIT, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, **(env or {})))


@needs_run_as
def test_run_as_nobody_keeps_full_marks(abused):
    """All four stages of the reference, its programs run as nobody: full marks, and
    nothing written in the grader's temporary folder."""
    run = abused[0]["run-as"]
    lost = {n: run.output_of(n)[:800] for n in run.failed()}
    assert not lost and run.score == run.max_score > 0 and run.status == 0, lost
    assert abused[1].disk["run-as"] == 0, "the grader wrote %s in its temporary folder" % (
        limits.size(abused[1].disk["run-as"]))
    assert abused[1].processes["run-as"] > 0, "the monitor never saw its programs"


@needs_run_as
def test_programs_run_as_nobody_cannot_touch_the_results(open_kit, open_dir):
    """A server that tries to read, append to, and plant a file next to the results
    (left world-readable by an earlier run) runs as nobody and can do none of it."""
    results_dir = open_dir / "results"
    results_dir.mkdir(mode=0o755)
    results = results_dir / "results.json"
    results.write_text('{"score": "an earlier grading"}')
    results.chmod(0o644)
    notes = open_dir / "notes"
    notes.mkdir()
    notes.chmod(0o777)
    report_file = notes / "snoop.jsonl"
    # Root's, that nobody may append to: the grader removes every file nobody owns below
    # /tmp when the grading ends, and this one must outlive it.
    report_file.touch()
    report_file.chmod(0o666)
    wait_until_nobody_is_idle()
    done = run_grader(open_kit / "tests" / "impls" / "pathological", "--run-as", "nobody",
                      "--stage", "1", "--results", str(results),
                      env={"CHATKIT_PATHOLOGY": "server-snoops",
                           "CHATKIT_SNOOP_RESULTS": str(results),
                           "CHATKIT_SNOOP_REPORT": str(report_file)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tries = [json.loads(line) for line in report_file.read_text().splitlines()]
    assert tries, "the server never ran"
    nobody = nobody_uid()
    for found in tries:
        assert found == {"uid": nobody, "read": False, "write": False, "create": False}, found
    assert not (results_dir / "planted").exists()
    graded = json.loads(results.read_text())
    assert graded["score"] == graded["max_score"] > 0
    assert stat.S_IMODE(results.stat().st_mode) == 0o600


@needs_run_as
@pytest.mark.parametrize("case", ["no such user", "unreadable folder", "results folder open"])
def test_run_as_refuses_with_one_clear_line(open_kit, open_dir, case):
    impl, args = open_kit / "solutions", []
    user, expected = "nobody", ""
    if case == "no such user":
        user, expected = "no-such-user-here", "--run-as no-such-user-here: no such user"
    elif case == "unreadable folder":
        hidden = open_dir / "hidden"
        hidden.mkdir(mode=0o700)
        impl = Path(shutil.copytree(open_kit / "solutions", hidden / "solutions"))
        expected = "--run-as nobody: nobody cannot read %s" % (impl / "1_echo" / "chat_server.py")
    else:
        shared = open_dir / "shared"
        shared.mkdir()
        shared.chmod(0o777)
        args = ["--results", str(shared / "results.json")]
        expected = "--run-as nobody: nobody can write in %s" % shared
    wait_until_nobody_is_idle()
    done = run_grader(impl, "--run-as", user, *args)
    assert done.returncode != 0
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ERROR: " + expected), lines
    assert "Traceback" not in done.stdout + done.stderr


class OneSum:
    """The files of a grading (files.Files' part the watchdog reads), due for a sum only
    when the test says so (`arm`), and always perhaps past their bound (so each sum
    pauses the writers first)."""

    def __init__(self, scratch: Path) -> None:
        self.scratch, self.bound = scratch, 64 * MB
        self.armed, self.sums = False, 0
        self.maybe_past = True
        self.growing = self.filling = False

    def arm(self) -> None:
        self.armed = True

    def due(self) -> bool:
        armed, self.armed = self.armed, False
        return armed

    def used(self) -> int:
        self.sums += 1
        return 0

    def remove_all(self, **_) -> None:
        pass


def process_state(pid: int) -> str:
    """'S', 'R', 'T' (stopped)... from /proc/PID/stat."""
    return Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0]


def test_a_look_that_fails_leaves_no_writer_paused_and_the_disk_limit_on(
        monkeypatch, tmp_path, capfd):
    """The watchdog pauses the programs that write files (SIGSTOP) and takes its summing
    lock, then starts a thread that adds the files up. If that thread can't start, the
    writer must be resumed and the lock freed (else the writer stays stopped and the disk
    limit is off for the rest of the run), and the failure said, not swallowed."""
    from grader import files
    sums = OneSum(tmp_path)
    settings = limits.Limits()
    settings.written = sums
    sandbox = programs.Sandbox(settings)
    writer = programs.Program([sys.executable, "-c", "import time\nf = open('log', 'w')\n"
                               "f.write('x'); f.flush(); time.sleep(60)"], "server", sandbox)
    start = threading.Thread.start

    def refused(thread):
        if getattr(thread, "_target", None) is not None and \
                thread._target.__name__ == "_sum_files":
            raise RuntimeError("can't start new thread")
        start(thread)

    try:
        assert wait_until(lambda: (tmp_path / "log").exists(), timeout=30)
        assert wait_until(lambda: files.writers(writer.pids), timeout=30)
        monkeypatch.setattr(threading.Thread, "start", refused)
        looked = sandbox.watchdog.looks
        sums.arm()
        assert wait_until(lambda: sandbox.watchdog.looks >= looked + 3, timeout=30)
        monkeypatch.setattr(threading.Thread, "start", start)
        assert wait_until(lambda: process_state(writer.proc.pid) != "T", timeout=5), \
            "the writer is left stopped (SIGSTOP) after the failed look"
        assert not sandbox.watchdog.summing.locked(), "the summing lock is left held"
        said = capfd.readouterr().err
        assert "can't start new thread" in said and "watchdog" in said, said
        assert any("can't start new thread" in trouble for trouble in sandbox.watchdog.troubles)
        from grader.report import say_watchdog_troubles

        class Grading:   # what the score table reads of a grading: its sandbox
            pass

        class Terminal:   # pytest's terminal reporter, as the score table writes to it
            lines = []

            def write_line(self, line, **markup):
                self.lines.append(line)

        grading, terminal = Grading(), Terminal()
        grading.sandbox = sandbox
        say_watchdog_troubles(grading, terminal)
        assert terminal.lines and all(line.startswith("WARNING: the grader's watchdog")
                                      and "may not have held" in line
                                      for line in terminal.lines), terminal.lines
        sums.arm()   # the disk limit is still on: the next sum happens
        assert wait_until(lambda: sums.sums >= 1, timeout=10), "no sum after the failed one"
    finally:
        monkeypatch.setattr(threading.Thread, "start", start)
        sandbox.stop_everything()
