"""Run the real grader on an implementation, the way an instructor would.

`grade()` starts `python -m pytest grader --impl DIR --results FILE` as its
own process (in its own process group, with a hard time limit) and returns
what the grader wrote to results.json, plus its wall time and printed output.
Tests judge the grader by that JSON, never by parsing its prose.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(KIT))   # the kit's own modules (grader.stages) for the tests
from grader.stages import STAGES  # noqa: E402,F401  (re-exported: the one list of the stages)

IMPLS = KIT / "tests" / "impls"
POSIX = os.name == "posix"
WINDOWS = os.name == "nt"
LINUX = sys.platform.startswith("linux")   # by its name: under Wine, /proc is Linux's
KILL_GRACE = 5.0   # seconds the grader gets to clean up after SIGTERM


@dataclass
class Grade:
    """One grader run: its results.json, exit status, output and wall time."""
    impl: Path
    results: dict
    status: int
    output: str
    seconds: float
    env: dict = field(default_factory=dict)

    @property
    def score(self) -> int:
        return self.results["score"]

    @property
    def max_score(self) -> int:
        return self.results["max_score"]

    def tests(self, stage: str | None = None) -> list[dict]:
        return [t for t in self.results["tests"] if stage is None or stage in t["tags"]]

    def failed(self, stage: str | None = None) -> list[str]:
        """Numbers of the failed checks ("2.3"), in order."""
        return [t["number"] for t in self.tests(stage) if t["status"] == "failed"]

    def stage_score(self, stage: str) -> tuple[int, int]:
        tests = self.tests(stage)
        return sum(t["score"] for t in tests), sum(t["max_score"] for t in tests)

    def output_of(self, number: str) -> str:
        return next(t["output"] for t in self.results["tests"] if t["number"] == number)


# What a traceback of the grader's own code looks like in a failure's text: pytest's
# (`grader/wire.py:120: TypeError`, `E   TypeError: …`, `>   source`) or Python's
# (`File "…/grader/wire.py", line 120`). A student program's traceback, shown as its
# output, names its own files, never the grader's.
GRADER_TRACEBACK = re.compile(r'^\S*grader[/\\]\S+\.py:\d+:|^E {3}|^> {3}|'
                              r'File "[^"]*[/\\]grader[/\\][^"]+\.py"', re.M)


def not_an_explanation(text: str) -> str | None:
    """Why a failed check's text is not the grader's explanation, or None if it is one.

    An explanation is 'Expected: … Got: …' (with the conversation and the hint),
    or 'Blocked by …'; never a traceback of the grader, and never the grader's own
    error (a planted fault must be judged, not crash the grader)."""
    found = GRADER_TRACEBACK.search(text)
    if found:
        return "it shows a traceback of the grader: %r" % found.group(0)
    if text.startswith("The grader hit an error of its own"):
        return "the grader failed on its own error"
    if text.startswith("Blocked by ") or ("Expected: " in text and "Got:      " in text):
        return None
    return "it has no 'Expected:'/'Got:' and is no 'Blocked by'"


def unexplained_failures(grade: "Grade") -> list[str]:
    """'2.9: why' for each failed check of `grade` whose text is not an explanation."""
    found = []
    for test in grade.results["tests"]:
        problem = not_an_explanation(test["output"]) if test["status"] == "failed" else None
        if problem:
            found.append("%s: %s\n%s" % (test["number"], problem, test["output"][:2000]))
    return found


# The test implementations that run the reference solution (solutions/) for some programs.
USES_THE_REFERENCE = {"pathological", "chatty", "launcher", "textmode"}


def self_contained(impl: Path, folder: Path) -> Path:
    """`impl` as a student's submission is: holding everything it runs. An implementation
    of tests/impls that runs the reference solution finds it in the kit's solutions/,
    outside its folder; its copy made here (folder/impls/NAME, so command lines still
    name impls/NAME) holds the reference in reference/ and protocol.py at its top. As
    root, the grader may give the programs a copy of the implementation folder (and the
    modules next to it) and nothing else of the kit (grader/isolation.py)."""
    if impl.parent.resolve() != IMPLS or impl.name not in USES_THE_REFERENCE:
        return impl
    copy = folder / "impls" / impl.name
    junk = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(impl, copy, ignore=junk)
    shutil.copytree(KIT / "solutions", copy / "reference", ignore=junk)
    shutil.copy(KIT / "protocol.py", copy / "protocol.py")
    return copy


def grade(impl: Path | str, *args: str, env: dict | None = None, limit: float = 240) -> Grade:
    """Run the grader on `impl` (extra pytest arguments in `args`); bounded by `limit` s."""
    impl = Path(impl)
    with tempfile.TemporaryDirectory(prefix="chatkit-grade-") as tmp:
        results_path = Path(tmp) / "results.json"
        graded = self_contained(impl, Path(tmp))
        command = [sys.executable, "-m", "pytest", "grader", "--impl", str(graded),
                   "--results", str(results_path), "-q", "-p", "no:cacheprovider", *args]
        started = time.monotonic()
        proc = subprocess.Popen(command, cwd=KIT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=grader_environment(env), start_new_session=POSIX)
        with RUNNING_LOCK:
            RUNNING.add(proc)
        try:
            output, _ = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            output, _ = proc.communicate()
            raise AssertionError("the grader did not finish within %d s on %s:\n%s"
                                 % (limit, impl, output.decode("utf-8", "replace")[-3000:]))
        except BaseException:   # interrupted (Ctrl-C, a test's timeout): no grading outlives it
            _kill_group(proc)
            raise
        finally:
            with RUNNING_LOCK:
                RUNNING.discard(proc)
        seconds = time.monotonic() - started
        text = output.decode("utf-8", "replace")
        if not results_path.exists():
            raise AssertionError("the grader wrote no results.json (exit %s):\n%s"
                                 % (proc.returncode, text[-3000:]))
        results = json.loads(results_path.read_text(encoding="utf-8"))
    return Grade(impl, results, proc.returncode, text, seconds, env or {})


def grader_environment(extra: dict | None) -> dict:
    """The grader's environment, as on a student's machine: Python may cache the grader's
    compiled modules (a machine that sets PYTHONDONTWRITEBYTECODE would otherwise make
    pytest compile and rewrite them on every run, ~1 s of each grading's time)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra or {})
    return env


# The gradings running, each in a session of its own (so a terminal's Ctrl-C does not
# reach them): an interrupted test stops them itself, or they run on as orphans.
RUNNING: set[subprocess.Popen] = set()
RUNNING_LOCK = threading.Lock()


def grade_many(jobs: list[tuple], workers: int = 3) -> list[Grade]:
    """Run several gradings in parallel: jobs are (impl, args, env) tuples. Interrupted
    (Ctrl-C, a test's timeout), it starts no more of them and stops those running."""
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(grade, impl, *args, env=env) for impl, args, env in jobs]
        return [f.result() for f in futures]
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        with RUNNING_LOCK:
            running = list(RUNNING)
        for proc in running:
            _kill_group(proc)
        raise
    finally:
        pool.shutdown(wait=True)


def run_bounded(command: list[str], cwd: Path, limit: float, env: dict | None = None,
                merged: bool = False) -> tuple[int, str, str]:
    """Run a command in a session of its own: (exit status, stdout, stderr; with
    `merged`, stderr is in stdout and ''); stopped with everything it started, and an
    AssertionError, past `limit` seconds, and stopped too if the test is interrupted."""
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if merged else subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=POSIX)
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise AssertionError("%s did not finish within %d s" % (command, limit))
    except BaseException:
        _kill_group(proc)
        raise
    return (proc.returncode, out.decode("utf-8", "replace"),
            (err or b"").decode("utf-8", "replace"))


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM first, so the grader can stop the programs it started; then SIGKILL."""
    if POSIX:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(KILL_GRACE)
            except subprocess.TimeoutExpired:
                pass
    else:
        proc.kill()


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain `text` (Linux: /proc; Windows:
    each process's own memory, its backslashes read as slashes; else ps)."""
    found = []
    proc = Path("/proc")
    if WINDOWS:
        wanted = text.replace("\\", "/")
        return ["%d: %s" % (pid, line) for pid, line in windows_command_lines().items()
                if wanted in line.replace("\\", "/")]
    if LINUX:
        for entry in proc.iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                raw = (entry / "cmdline").read_bytes()
                if b"\0" not in raw and not raw:
                    continue
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            line = raw.replace(b"\0", b" ").decode("utf-8", "replace")
            if text in line and state != "Z":
                found.append("%s: %s" % (entry.name, line))
        return found
    ps = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True)
    return [line.strip() for line in ps.stdout.splitlines() if text in line]


def windows_command_lines() -> dict[int, str]:
    """Windows: {pid: command line} of every process whose memory we may read (its
    process parameters, reached through its PEB: how psutil reads them too)."""
    import ctypes
    from ctypes import wintypes
    from grader.system import parent_map

    class BasicInformation(ctypes.Structure):
        _fields_ = [("ExitStatus", ctypes.c_void_p), ("PebBaseAddress", ctypes.c_void_p),
                    ("rest", ctypes.c_void_p * 4)]

    class UnicodeString(ctypes.Structure):
        _fields_ = [("Length", wintypes.USHORT), ("MaximumLength", wintypes.USHORT),
                    ("Buffer", ctypes.c_void_p)]

    ntdll = ctypes.WinDLL("ntdll")
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = wintypes.HANDLE

    def read(handle, address, size):
        data, done = ctypes.create_string_buffer(size), ctypes.c_size_t()
        if not kernel32.ReadProcessMemory(wintypes.HANDLE(handle), ctypes.c_void_p(address),
                                          data, size, ctypes.byref(done)):
            raise OSError(ctypes.get_last_error(), "ReadProcessMemory")
        return data.raw

    lines = {}
    for pid in parent_map():
        handle = kernel32.OpenProcess(0x0410, False, pid)   # QUERY_INFORMATION | VM_READ
        if not handle:
            continue                                        # ended, or not ours to read
        try:
            basic = BasicInformation()
            if ntdll.NtQueryInformationProcess(wintypes.HANDLE(handle), 0, ctypes.byref(basic),
                                               ctypes.sizeof(basic), None) != 0 \
                    or not basic.PebBaseAddress:
                continue
            # 64-bit layouts: PEB.ProcessParameters at 0x20, its CommandLine at 0x70
            parameters = int.from_bytes(read(handle, basic.PebBaseAddress + 0x20, 8), "little")
            line = UnicodeString.from_buffer_copy(
                read(handle, parameters + 0x70, ctypes.sizeof(UnicodeString)))
            lines[pid] = read(handle, line.Buffer, line.Length).decode("utf-16-le", "replace")
        except OSError:
            continue
        finally:
            kernel32.CloseHandle(wintypes.HANDLE(handle))
    return lines


LEFTOVER_WAIT = 3.0   # seconds a process that is being stopped gets to be gone


def wait_until(predicate, timeout: float, step: float = 0.02):
    """Poll `predicate()` until it returns something true, for at most `timeout` seconds;
    return its last value. A bounded wait on the event itself, never a bare sleep: a
    process that was just started may not have exec'd yet, one just killed may not yet
    be reaped."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


def left_running(list_them, timeout: float = LEFTOVER_WAIT) -> list:
    """What `list_them()` still lists after at most `timeout` seconds of waiting for it
    to be empty: processes that are being stopped get that long to be gone."""
    left = list_them()
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = list_them()
    return left


def started_by(process: str, marker: str) -> bool:
    """Whether a process (a processes_mentioning line) carries `marker` ('NAME=VALUE')
    in its environment: the kit's tests mark the gradings they start this way, so that
    another copy of the tests running on the same machine is never counted as theirs.
    Where the environment can't be read (no /proc), assume it does."""
    if not LINUX:
        return True
    proc = Path("/proc", process.split(":", 1)[0])
    try:
        environ = (proc / "environ").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False        # it has ended since it was listed
    except OSError:
        return True
    return marker.encode() in environ


def stage_maximum(stage: str) -> tuple[int, int]:
    """(points, checks) of one stage as the grader declares them (grader/catalog.py), so
    that tests never hard-code a stage's total."""
    if str(KIT) not in sys.path:
        sys.path.insert(0, str(KIT))
    from grader import catalog
    return catalog.stage_maximum(stage)


def started_skeletons(root: Path) -> Path:
    """The skeletons as a student meets each, under root/stages: stage 1 as unpacked,
    every later stage started from the solution of the stage before it (as `python -m
    grader next --from` makes it); protocol.py and todo.py in root, as in the kit."""
    if str(KIT) not in sys.path:
        sys.path.insert(0, str(KIT))
    from grader.moving_on import carry
    for name in ("protocol.py", "todo.py"):
        shutil.copy(KIT / name, root / name)
    impl = root / "stages"
    for before, stage in zip([None] + STAGES, STAGES):
        shutil.copytree(KIT / "stages" / stage, impl / stage,
                        ignore=shutil.ignore_patterns("__pycache__"))
        if before is not None:
            carry(KIT / "solutions" / before, impl / stage)
    return impl


def imported_modules(program: Path) -> set[str]:
    """The modules a program imports (grader/moving_on.py reads them the same way)."""
    if str(KIT) not in sys.path:
        sys.path.insert(0, str(KIT))
    from grader.moving_on import imported_modules as read
    return read(program)


def check_points(label: str) -> int:
    """What check `label` ('2.9') earns, as the grader declares it (0 for a kept check)."""
    if str(KIT) not in sys.path:
        sys.path.insert(0, str(KIT))
    from grader import catalog
    return next(c.points for c in catalog.declared() if c.label == label)


def workflow_steps(text: str) -> list[dict]:
    """The workflow's steps: each a dict of its `key: value` lines (nested keys flattened;
    a block `key: |` gets its lines, their common indentation removed)."""
    found, current, block, block_indent = [], None, None, 0
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        if block is not None and (not line.strip() or indent > block_indent):
            block.append(line)
            continue
        if block is not None:
            current[block_key] = textwrap.dedent("\n".join(block)).strip("\n") + "\n"
            block = None
        if line.startswith("    - name: "):
            current = {"name": line.split(": ", 1)[1]}
            found.append(current)
        elif current is not None and re.match(r"^ {6,}[\w-]+: ", line):
            key, value = line.strip().split(": ", 1)
            current[key] = value
            if value == "|":
                block, block_key, block_indent = [], key, indent
    if block is not None:
        current[block_key] = textwrap.dedent("\n".join(block)).strip("\n") + "\n"
    return found
