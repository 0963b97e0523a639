"""The grader's platform-specific paths, tested on Linux through their seams.

Where the grader reads the system differently on macOS or Windows, the part that
interprets what it read is a function of its own, tested here with what those
systems print; the part that reads is exercised on the system at hand.
"""

import os
import socket
import subprocess
import sys
import time

import pytest

from gradekit import KIT, STAGES, wait_until

sys.path.insert(0, str(KIT))
from grader import output, processes, programs, system  # noqa: E402
from grader.system import macos, windows  # noqa: E402


# Modules Windows' Python does not have. Whatever the grader, the teachers' tools or a
# student's files import at their top must be none of these.
POSIX_ONLY = ("fcntl", "grp", "pwd", "resource", "termios")


def test_every_grader_module_imports_where_posix_modules_do_not_exist():
    """`pytest grader` on Windows imports every module of the grader first: one POSIX-only
    import at a module's top (isolation.py once had `import fcntl`) stops it for every
    student there. Here those modules are made unimportable, as on Windows."""
    code = ("import importlib, pkgutil, sys\n"
            "sys.path.insert(0, %r)\n"
            "for name in %r: sys.modules[name] = None\n"
            "import grader, grader.teach\n"
            "names = [info.name for package in (grader, grader.teach) for info in "
            "pkgutil.iter_modules(package.__path__, package.__name__ + '.')]\n"
            "for name in names: importlib.import_module(name)\n"
            "print(len(names), 'modules')" % (str(KIT), POSIX_ONLY))
    done = subprocess.run([sys.executable, "-c", code], cwd=KIT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[0]) >= 20, done.stdout


def test_the_kits_own_tests_collect_where_posix_modules_do_not_exist():
    """The Windows CI job runs `pytest tests`: one test module importing pwd at its top
    (test_containment.py once did) stops the whole run there before any test."""
    code = ("import sys\n"
            "for name in %r: sys.modules[name] = None\n"
            "import pytest\n"
            "sys.exit(pytest.main(['tests', '--collect-only', '-q', '-p', 'no:cacheprovider']))"
            % (POSIX_ONLY,))
    done = subprocess.run([sys.executable, "-c", code], cwd=KIT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert " tests collected" in done.stdout, done.stdout[-1000:]


def test_no_student_file_imports_a_posix_or_windows_only_module():
    """protocol.py, todo.py, the skeletons and the solutions run on every student's
    computer."""
    import ast
    files = [KIT / "protocol.py", KIT / "todo.py", *sorted(KIT.glob("stages/*/*.py")),
             *sorted(KIT.glob("solutions/*/*.py"))]
    assert len(files) > 2 + 2 * len(STAGES), files   # each stage's server and client, at least
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in POSIX_ONLY + ("msvcrt", "winreg"), \
                    (path, name)


def test_linux_is_told_by_its_name_not_by_proc_being_there():
    """Under Wine (Windows' Python run on Linux, how the kit's Windows paths were tried)
    /proc exists but describes Linux's processes: the grader decides the system once, in
    grader/system/__init__.py, from the system's name."""
    import re
    assert system.LINUX == sys.platform.startswith("linux")
    assert system.WINDOWS == (os.name == "nt") and system.POSIX == (os.name == "posix")
    guess = re.compile(r'os\.name|sys\.platform|"/proc[^"]*"\)\.(exists|is_dir)')
    for path in sorted((KIT / "grader").rglob("*.py")):
        if path.relative_to(KIT).as_posix() == "grader/system/__init__.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if guess.search(line) and "system: str = os.name" not in line:
                raise AssertionError("%s:%d decides the system itself: %s"
                                     % (path.relative_to(KIT), number, line.strip()))


def test_results_are_written_where_there_is_no_o_nofollow(monkeypatch, tmp_path):
    """Windows has no os.O_NOFOLLOW: results.json is written there all the same (O_EXCL
    alone refuses a path where something already is), over what was there before."""
    import importlib
    from grader import isolation
    monkeypatch.delattr(os, "O_NOFOLLOW", raising=False)
    try:
        importlib.reload(isolation)   # as it is imported on Windows
        results = tmp_path / "results.json"
        results.write_text("old", encoding="utf-8")
        isolation.write_out_of_reach(results, '{"score": 1}')
        assert results.read_text(encoding="utf-8") == '{"score": 1}'
        assert [path.name for path in tmp_path.iterdir()] == ["results.json"]
    finally:
        monkeypatch.undo()
        importlib.reload(isolation)


def test_descendants_follow_every_generation():
    parents = {1: 0, 10: 1, 11: 10, 12: 11, 13: 10, 20: 1, 21: 20}
    assert processes.descendants(10, parents) == {10, 11, 12, 13}
    assert processes.descendants(21, parents) == {21}
    assert processes.descendants(99, parents) == {99}


def test_a_programs_orphans_end_with_it():
    """A program whose child starts five sleepers and exits (so the sleepers are nobody's
    children) is stopped with all of them: on Linux and macOS through its process group,
    on Windows through its job object (a tree kill, taskkill /T, misses orphans there:
    under Wine it left all five)."""
    from gradekit import left_running, processes_mentioning
    from grader.limits import Limits
    mark = "orphan-%d" % os.getpid()
    middle = ("import subprocess, sys\nfor _ in range(5): subprocess.Popen([sys.executable, "
              "'-c', 'import time; time.sleep(60)', %r])" % mark)
    top = "import subprocess, sys, time\nsubprocess.run([sys.executable, '-c', %r])\n" \
          "time.sleep(60)" % middle
    sandbox = programs.Sandbox(Limits())
    program = programs.Program([sys.executable, "-c", top, mark], "server", sandbox)
    try:
        sleepers = wait_until(lambda: len(processes_mentioning(mark)) >= 6, timeout=30)
        assert sleepers, processes_mentioning(mark)
        assert program.exit_status() is None
    finally:
        sandbox.stop_everything()
    left = left_running(lambda: processes_mentioning(mark))
    assert not left, left


def test_ps_listing_as_macos_prints_it():
    listing = "    1     0\n  412     1\n  413   412\n garbage line\n\n"
    assert macos.parse_ps_parents(listing) == {1: 0, 412: 1, 413: 412}


def test_the_parent_map_of_this_system_holds_a_fresh_child_and_grandchild():
    """The reading side, on this system: a child and the grandchild it starts are found
    below this process (waiting, bounded, for the grandchild to exist)."""
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', " \
           "'import time; time.sleep(30)']); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        def tree():
            found = processes.descendants(os.getpid(), system.parent_map())
            return found if len(found) >= 3 else None
        found = wait_until(tree, timeout=10)
        assert found and child.pid in found, found
    finally:
        for pid in processes.descendants(child.pid, system.parent_map()):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        child.wait(5)


def test_ps_is_read_as_on_macos_where_ps_exists():
    """The macOS and BSD way (ps), run here where ps exists: it lists this process
    under its parent, as /proc does."""
    import shutil
    import pytest
    if shutil.which("ps") is None:
        pytest.skip("no ps on this system")
    assert macos.parent_map().get(os.getpid()) == os.getppid()


def test_a_taken_port_is_recognised_in_every_systems_words():
    from grader.serverside import says_port_taken
    linux = b"OSError: [Errno 98] Address already in use"
    macos = b"OSError: [Errno 48] Address already in use"
    windows = (b"OSError: [WinError 10048] Only one usage of each socket address "
               b"(protocol/network address/port) is normally permitted")
    assert all(says_port_taken(text) for text in (linux, macos, windows))
    assert not says_port_taken(b"ModuleNotFoundError: No module named 'protocol'")


def test_the_graders_output_is_utf8_where_windows_would_use_its_code_page():
    """Output to a pipe on Windows is in the console's code page (cp1252 here stands for
    it): the grader switches its own output to UTF-8, so ✓ and ✗ and names survive."""
    done = subprocess.run([sys.executable, "-m", "pytest", "grader", "--impl",
                           str(KIT / "solutions"), "--stage", "1", "-q"], cwd=KIT,
                          capture_output=True, timeout=180,
                          env=dict(os.environ, PYTHONIOENCODING="cp1252"))
    text = done.stdout.decode("utf-8")   # raises if it is not UTF-8
    assert "✓ 1.1" in text and "\\u2713" not in text, text[-1500:]


def test_the_teachers_tools_write_utf8_where_windows_would_use_its_code_page(tmp_path):
    """`python -m grader batch` names students in its summary (Zoë, שרה): to a pipe on
    Windows it wrote them in the code page (under Wine, Zoë's ë came as byte 0xEB)."""
    missing = tmp_path / "Zoë"
    done = subprocess.run([sys.executable, "-m", "grader", "batch", str(missing), "--out",
                           str(tmp_path / "out")], cwd=KIT, capture_output=True, timeout=60,
                          env=dict(os.environ, PYTHONIOENCODING="cp1252"))
    said = (done.stdout + done.stderr).decode("utf-8")   # raises if it is not UTF-8
    assert done.returncode == 2 and "Zoë" in said, said


def test_the_clients_wake_up_within_a_second_for_ctrl_c():
    """On Windows Ctrl-C reaches a client only once its select() returns: every
    select() of the reference clients and skeletons (their loop, client.py) waits at
    most WAKE_UP ≤ 1 s."""
    import ast
    paths = sorted(KIT.glob("solutions/*/client.py")) + sorted(KIT.glob("stages/*/client.py"))
    assert paths
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        wake_up = [node.value.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                   and any(getattr(t, "id", "") == "WAKE_UP" for t in node.targets)]
        assert wake_up and 0 < wake_up[0] <= 1, path
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                 and getattr(node.func, "attr", "") == "select"]
        assert calls, path
        for call in calls:
            assert len(call.args) == 4 and getattr(call.args[3], "id", "") == "WAKE_UP", path


def test_load_on_windows_never_gives_one_worker_more_than_select_takes():
    """Windows' select() watches at most 512 sockets: the load tool gives each worker
    at most 500 clients there, and says so when --workers asks for more."""
    from types import SimpleNamespace
    from grader.teach import load
    args = SimpleNamespace(stage=3, echo=False, clients=1000, impl="stages")
    assert load.choose_workers(args, None, system="nt") >= 2
    assert load.choose_workers(SimpleNamespace(stage=3, echo=False, clients=1000, impl=None),
                               None, system="posix") >= 1
    assert load.windows_workers_too_few(1000, 1, system="nt")
    assert not load.windows_workers_too_few(1000, 2, system="nt")
    assert not load.windows_workers_too_few(1000, 1, system="posix")


def test_load_workers_never_ask_select_to_watch_nothing():
    """Windows' select() refuses three empty lists (WinError 10022): a load worker whose
    clients were all refused waits without it (under Wine the worker died of it)."""
    import selectors
    from grader.teach import loadgen

    class WindowsSelect(selectors.SelectSelector):
        def select(self, timeout=None):
            if not self.get_map():
                raise OSError(10022, "An invalid argument was supplied")
            return super().select(timeout)

    with WindowsSelect() as selector:
        assert loadgen.ready(selector, 0.01) == []
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            selector.register(listener, selectors.EVENT_READ)
            assert loadgen.ready(selector, 0.01) == []
            selector.unregister(listener)


def test_a_line_ending_gets_the_same_verdict_as_on_windows():
    """x.22 types 'after\\r\\n'. A client reading text and stripping only '\\n' is right on
    every real system (Windows' text mode turns '\\r\\n' into '\\n'): it passes here too
    (grader/startup/sitecustomize.py). One reading bytes and stripping only '\\n' sends the
    '\\r' on a Windows console: it fails here too (the faulty client_crlf)."""
    from gradekit import IMPLS, grade
    assert grade(IMPLS / "textmode", "--stage", "1").failed() == []
    crlf = grade(IMPLS / "faulty", "--stage", "1", env={"CHATKIT_FAULT": "client_crlf"})
    assert crlf.failed() == ["1.22"]


class FakeKernel32:
    """Windows' kernel32 as the Ctrl-C helper calls it: records each call, and fails
    the call named in `failing` as Windows does (returns 0, sets the last error)."""

    def __init__(self, failing: str = ""):
        self.calls, self.failing = [], failing

    def __getattr__(self, name):
        def call(*args):
            self.calls.append((name,) + args)
            return 0 if name == self.failing else 1
        return call


def run_windows_ctrl_c(monkeypatch, kernel32, pid="4242"):
    import ctypes
    monkeypatch.setattr(ctypes, "WinDLL", lambda name, use_last_error=False: kernel32,
                        raising=False)
    monkeypatch.setattr(ctypes, "get_last_error", lambda: 6, raising=False)
    monkeypatch.setattr(sys, "argv", ["-c", pid])
    try:
        exec(compile(windows.WINDOWS_CTRL_C, "WINDOWS_CTRL_C", "exec"), {})
    except SystemExit as exit:
        return exit.code
    return 0


def test_ctrl_c_on_windows_is_the_console_event_of_the_programs_own_console(monkeypatch):
    """Check 4.8 on Windows: the helper leaves its own console, attaches to the server's,
    ignores the event itself, then generates CTRL_C_EVENT (0) for that whole console (0)."""
    kernel32 = FakeKernel32()
    assert run_windows_ctrl_c(monkeypatch, kernel32) == 0
    assert kernel32.calls == [("FreeConsole",), ("AttachConsole", 4242),
                              ("SetConsoleCtrlHandler", None, True),
                              ("GenerateConsoleCtrlEvent", 0, 0)]


def test_ctrl_c_on_windows_that_cannot_be_sent_says_why(monkeypatch):
    """If the console can't be reached, nothing is generated and the helper exits with
    Windows' error: the grader then reports its own error, not a verdict on the server."""
    kernel32 = FakeKernel32(failing="AttachConsole")
    said = run_windows_ctrl_c(monkeypatch, kernel32)
    assert said == "Ctrl-C could not be sent to process 4242: Windows error 6"
    assert ("GenerateConsoleCtrlEvent", 0, 0) not in kernel32.calls


def plain(argument):
    """A recorded ctypes argument as a plain value: a handle's number, a structure's
    limit flags and process bound."""
    if hasattr(argument, "_obj"):            # byref(structure)
        basic = argument._obj.BasicLimitInformation
        return ("limits", basic.LimitFlags, basic.ActiveProcessLimit)
    return getattr(argument, "value", argument)


def test_a_program_on_windows_gets_a_job_that_bounds_and_ends_it(monkeypatch):
    """Windows: each program is put in a job object that kills everything in it when
    closed, holds at most --max-processes of its processes (plus its console host), and
    is ended, then closed, when the program is stopped."""
    kernel32 = FakeKernel32()
    monkeypatch.setattr(windows, "kernel32", lambda: kernel32)
    job = windows.Job.holding(4242, 50)
    assert job is not None
    job.end()
    calls = [(call[0],) + tuple(plain(argument) for argument in call[1:])
             for call in kernel32.calls]
    assert calls[0] == ("CreateJobObjectW", None, None)
    assert calls[1][:3] == ("SetInformationJobObject", 1, windows.EXTENDED_LIMITS)
    assert calls[1][3] == ("limits", windows.KILL_ON_JOB_CLOSE | windows.ACTIVE_PROCESS, 51)
    assert calls[2] == ("AssignProcessToJobObject", 1, 4242)
    assert calls[3:] == [("TerminateJobObject", 1, 1), ("CloseHandle", 1)]
    job.end()                                     # a second stop does nothing more
    assert len(kernel32.calls) == 5


def test_a_job_windows_refuses_leaves_the_tree_kill(monkeypatch):
    """If Windows refuses to put the program in a job, there is no job (the grader then
    ends the program's tree with taskkill /T), and the job made is not left open."""
    kernel32 = FakeKernel32(failing="AssignProcessToJobObject")
    monkeypatch.setattr(windows, "kernel32", lambda: kernel32)
    assert windows.Job.holding(4242, 50) is None
    assert kernel32.calls[-1][0] == "CloseHandle"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sets a pipe's size (Linux)")
def test_a_program_printing_fast_is_drained_fast_the_windows_way(monkeypatch):
    """Windows can't wait for a pipe, so the grader looks into it again and again; a
    pipe holds about 4 KB there, and a program printing waits for it to be emptied. Here
    a 4 KB Linux pipe is read the Windows way (peeking at what waits): a program that
    prints 16 MB in 1 KB lines must be drained within 3 s (0.4-0.5 s here; looking
    every 5 ms, as the grader did, 9-10 s; and under Wine a server logging each
    message failed 3.10 that way: 6,120 replies of 8,200 in 10 s)."""
    import fcntl
    import termios
    import time
    monkeypatch.setattr(output, "POSIX", False)
    monkeypatch.setattr(output, "bytes_waiting", lambda fd: int.from_bytes(
        fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), "little"))
    reader, writer = os.pipe()
    fcntl.fcntl(writer, 1031, 4096)   # F_SETPIPE_SZ: the pipe holds 4 KB, as on Windows
    total = 16 * 1024 * 1024          # what check 3.10 makes a server logging 1 KB print
    code = ("import sys\nline = b'x' * 1023 + b'\\n'\n"
            "for _ in range(%d): sys.stdout.buffer.write(line); sys.stdout.buffer.flush()"
            % (total // 1024))
    started = time.monotonic()
    drained = output.Output(os.fdopen(reader, "rb", buffering=0), lambda: None)
    printer = subprocess.Popen([sys.executable, "-c", code], stdout=writer)
    os.close(writer)
    try:
        # drained.total, not drained.count(): count() would read the pipe itself
        assert wait_until(lambda: drained.total == total, timeout=60), drained.total
        seconds = time.monotonic() - started
    finally:
        printer.kill()
        printer.wait(10)
        drained.ended = True   # a pipe's end shows on Windows only (PeekNamedPipe fails)
    assert seconds < 3, seconds


# --- one module per system (grader/system/): each is reached here through its seams ----

def test_the_system_is_asked_of_the_module_of_its_name(monkeypatch):
    """grader/system dispatches on its flags: Linux -> linux, Windows -> windows, any
    other system (macOS, BSD) -> macos; what it answers is that module's answer."""
    from grader.system import linux
    for is_linux, is_windows, module in ((True, False, linux), (False, True, windows),
                                         (False, False, macos)):
        monkeypatch.setattr(system, "LINUX", is_linux)
        monkeypatch.setattr(system, "WINDOWS", is_windows)
        assert system.platform_module() is module
        monkeypatch.setattr(module, "busy_seconds", lambda pid, module=module: (module, pid))
        monkeypatch.setattr(module, "parent_map", lambda module=module: {0: module})
        assert system.busy_seconds(42) == (module, 42)
        assert system.parent_map() == {0: module}


def test_cpu_time_and_the_open_files_limit_are_the_systems_answers(monkeypatch):
    """The load tool's two questions about a server: its CPU time (Linux: /proc's user
    plus system time; elsewhere busy_seconds, which is the CPU time there) and its limit
    on open files (Linux's /proc alone tells it)."""
    from grader.system import linux
    if system.LINUX:
        import resource
        before = system.cpu_seconds(os.getpid())
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:   # burn 0.3 s of CPU
            pass
        assert system.cpu_seconds(os.getpid()) >= before + 0.2
        assert system.open_files_limit(os.getpid()) == str(
            resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        assert system.cpu_seconds(2 ** 22 + 1) is None   # past any pid: no such process
    monkeypatch.setattr(linux, "cpu_seconds", lambda pid: ("linux", pid))
    for is_linux, is_windows, module in ((False, True, windows), (False, False, macos)):
        monkeypatch.setattr(system, "LINUX", is_linux)
        monkeypatch.setattr(system, "WINDOWS", is_windows)
        monkeypatch.setattr(module, "busy_seconds", lambda pid, module=module: (module, pid))
        assert system.cpu_seconds(42) == (module, 42)
        assert system.open_files_limit(42) is None
    monkeypatch.setattr(system, "LINUX", True)
    monkeypatch.setattr(system, "WINDOWS", False)
    assert system.cpu_seconds(42) == ("linux", 42)


def test_the_macos_way_to_the_parent_map_runs_here_as_the_grader_runs_it(monkeypatch):
    """The flags set as on macOS, the grader's own call (system.parent_map) runs ps with
    macOS's flags here, where ps takes them too: this process is under its parent, as
    /proc says, and so are nearly all the processes both saw."""
    import shutil
    from grader.system import linux
    if shutil.which("ps") is None or not system.LINUX:
        pytest.skip("compares ps with /proc: Linux with ps")
    monkeypatch.setattr(system, "LINUX", False)
    monkeypatch.setattr(system, "WINDOWS", False)
    listed = system.parent_map()
    proc = linux.parent_map()
    assert listed.get(os.getpid()) == os.getppid()
    both = set(listed) & set(proc)
    assert len(both) >= 0.9 * min(len(listed), len(proc)), (len(listed), len(proc))
    assert sum(listed[pid] == proc[pid] for pid in both) == len(both)


@pytest.mark.parametrize("printed, seconds", [
    ("0:00.05\n", 0.05),                 # macOS: minutes, seconds and hundredths
    ("  12:34.56", 12 * 60 + 34.56),
    ("01:02:03.25", 3600 + 2 * 60 + 3.25),      # BSD, past an hour
    ("2-01:02:03.25", 2 * 86400 + 3600 + 2 * 60 + 3.25),   # past a day
    ("00:00:01", None),                  # Linux's procps: whole seconds, too coarse
    ("", None),                          # the process ended: ps prints nothing
])
def test_cpu_time_as_macos_and_bsd_print_it(printed, seconds):
    found = macos.parse_ps_time(printed)
    assert found == (None if seconds is None else pytest.approx(seconds))


def test_the_macos_way_to_cpu_time_runs_here(monkeypatch):
    """The flags set as on macOS, busy_seconds runs ps -o time= -p PID here: procps
    takes the same flags and prints whole seconds (00:00:00), too coarse to use, so
    the answer is None (check 1.12 then says the system can't tell), as for a process
    that ended."""
    import shutil
    if shutil.which("ps") is None:
        pytest.skip("no ps on this system")
    monkeypatch.setattr(system, "LINUX", False)
    monkeypatch.setattr(system, "WINDOWS", False)
    said = subprocess.run(["ps", "-o", "time=", "-p", str(os.getpid())], capture_output=True,
                          text=True, timeout=5).stdout
    assert system.busy_seconds(os.getpid()) == macos.parse_ps_time(said)
    assert system.busy_seconds(2 ** 22 + 1) is None   # past any pid: no such process


class FakeWindowsProcesses(FakeKernel32):
    """kernel32 as the grader reads processes from it: OpenProcess and GetProcessTimes
    (which fills its four FILETIMEs), a toolhelp snapshot (Process32First/Next fill
    the entry with each of `processes`, (pid, parent))."""

    def __init__(self, times=(0, 0, 0, 0), processes=(), failing=""):
        super().__init__(failing)
        self.times, self.processes = times, list(processes)

    def __getattr__(self, name):
        recorded = super().__getattr__(name)

        def call(*args):
            done = recorded(*args)
            if not done:
                return 0
            if name == "OpenProcess" or name == "CreateToolhelp32Snapshot":
                return 77                 # a handle
            if name == "GetProcessTimes":
                for filetime, value in zip(args[1:], self.times):
                    filetime._obj.value = value
            if name in ("Process32First", "Process32Next"):
                if not self.processes:
                    return 0
                entry = args[1]._obj
                entry.th32ProcessID, entry.th32ParentProcessID = self.processes.pop(0)
            return done
        return call


def fake_kernel32(monkeypatch, kernel32):
    import ctypes
    monkeypatch.setattr(ctypes, "WinDLL", lambda name, use_last_error=False: kernel32,
                        raising=False)


def test_cpu_time_on_windows_is_kernel_and_user_time_in_100_ns_units(monkeypatch):
    """GetProcessTimes gives creation, exit, kernel and user time as FILETIMEs (100 ns
    units): a process's CPU time is kernel plus user, in seconds; its handle is closed."""
    assert windows.cpu_seconds(15_000_000, 5_000_000) == 2.0
    assert windows.cpu_seconds(1, 0) == 1e-7
    kernel32 = FakeWindowsProcesses(times=(111, 222, 12_500_000, 2_500_000))
    fake_kernel32(monkeypatch, kernel32)
    assert windows.busy_seconds(4242) == 1.5
    names = [call[0] for call in kernel32.calls]
    assert names == ["OpenProcess", "GetProcessTimes", "CloseHandle"]
    assert kernel32.calls[0][1:] == (0x1000, False, 4242)   # PROCESS_QUERY_LIMITED_INFORMATION


def test_cpu_time_on_windows_of_a_process_that_cannot_be_opened_is_unknown(monkeypatch):
    fake_kernel32(monkeypatch, FakeWindowsProcesses(failing="OpenProcess"))
    assert windows.busy_seconds(4242) is None
    kernel32 = FakeWindowsProcesses(failing="GetProcessTimes")
    fake_kernel32(monkeypatch, kernel32)
    assert windows.busy_seconds(4242) is None
    assert kernel32.calls[-1][0] == "CloseHandle"


def test_the_parent_map_on_windows_is_read_from_a_toolhelp_snapshot(monkeypatch):
    """Every entry of the snapshot, first to last, gives a process and its parent; the
    snapshot is closed; a snapshot Windows refuses gives no processes."""
    kernel32 = FakeWindowsProcesses(processes=[(4, 0), (400, 4), (4242, 400)])
    fake_kernel32(monkeypatch, kernel32)
    assert windows.parent_map() == {4: 0, 400: 4, 4242: 400}
    names = [call[0] for call in kernel32.calls]
    assert names[0] == "CreateToolhelp32Snapshot" and kernel32.calls[0][1:] == (0x2, 0)
    assert names[1:] == ["Process32First"] + ["Process32Next"] * 3 + ["CloseHandle"]
    fake_kernel32(monkeypatch, FakeWindowsProcesses(failing="CreateToolhelp32Snapshot"))
    assert windows.parent_map() == {}
