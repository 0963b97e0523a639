"""As root, each grading runs its students' programs as a user of its own.

A class graded as root (as CI runs these tests) holds, besides correct students:

* a saboteur, whose server leaves a daemon behind (double fork, a new session, an
  empty environment: no marker of the grader survives) that kills every process
  of its own user, again and again, for a minute;
* a forger, whose daemon looks up the grader's command lines (/proc is readable by
  everyone) and tries, again and again, to overwrite every results file it finds
  with a score of 999;
* a fork loop, whose server starts processes as fast as it can.

Under one shared user, the saboteur stopped its neighbours' programs. With a user
per grading, the correct students keep full marks, no forged score is on file, the
fork loop stays at or under the kernel's bound, and no process of any grading's
user is left when the command returns. The saboteur also goes through the
Gradescope bundle alone.

Under `--run-as USER` the class shares USER, one grading after another: the
saboteur's daemon must not outlive its grading, so its classmates still keep full
marks, and nothing of USER runs when the batch returns. The grader refuses USER
while another grading uses it or while it has processes of its own.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gradekit import KIT, left_running, wait_until

sys.path.insert(0, str(KIT))
from grader import isolation, limits, users  # noqa: E402

pytestmark = pytest.mark.skipif(not isolation.possible(),
                                reason="a user per grading needs Linux and a grader run as root")

SOLUTION = KIT / "solutions" / "1_echo"
FORGED = "FORGED-BY-A-STUDENT"   # what the forger writes into every results file it finds
TASK_BOUND = limits.Limits().processes + limits.THREADS_ALLOWED

# Each hostile server: a prelude that does its mischief, then the reference server.
DAEMON = '''
import os, sys
def _leave_a_daemon(code):
    if os.fork() != 0:
        return
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    os.execve(sys.executable, [sys.executable, "-c", code], {})   # no marker survives
'''
SABOTEUR = DAEMON + '''
_leave_a_daemon("""
import os, signal, time
end = time.time() + 60
while time.time() < end:
    try:
        os.kill(-1, signal.SIGKILL)   # every process of this user but itself
    except OSError:
        pass
    time.sleep(0.02)
""")
'''
FORGER = DAEMON + '''
_leave_a_daemon("""
import json, os, time
forged = json.dumps({"score": 27, "max_score": 27, "tests": [], "note": "%s"})
end = time.time() + 60
while time.time() < end:
    for pid in os.listdir("/proc"):
        try:
            words = open("/proc/%%s/cmdline" %% pid, "rb").read().decode().split("\\\\0")
        except (OSError, ValueError):
            continue
        for flag in ("--out", "--results", "--classroom-results"):
            if flag in words[:-1]:
                target = words[words.index(flag) + 1]
                for root, dirs, files in os.walk(target) if os.path.isdir(target) else [
                        (os.path.dirname(target), [], [os.path.basename(target)])]:
                    for name in files + ["forged.json"]:
                        try:
                            with open(os.path.join(root, name), "w") as f:
                                f.write(forged if name.endswith(".json") else "x,%s\\\\n")
                        except OSError:
                            pass
    time.sleep(0.05)
""")
''' % (FORGED, FORGED)
FORK_LOOP = '''
import os, time
for _ in range(20000):
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
    except OSError:
        time.sleep(0.001)
'''


def submission(folder: Path, prelude: str = "") -> None:
    stage = folder / "1_echo"
    shutil.copytree(SOLUTION, stage, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(KIT / "protocol.py", folder / "protocol.py")
    server = stage / "chat_server.py"
    server.write_text(prelude + "\n" + server.read_text(encoding="utf-8"), encoding="utf-8")


def pool_processes(zombies: bool = True) -> dict[int, int]:
    """{uid: how many processes} for the uids of the grading users' pool (zombies, killed
    but not yet reaped by their parent, still count for the kernel's bound)."""
    counts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                uid = entry.stat().st_uid
                dead = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
            except (OSError, IndexError):
                continue
            if isolation.FIRST_UID <= uid < isolation.FIRST_UID + isolation.POOL_SIZE \
                    and (zombies or not dead):
                counts[uid] = counts.get(uid, 0) + 1
    return counts


def ours_alive(ours: set[int]) -> dict[int, int]:
    """Live processes of this run's grading users, after a bounded wait for the ones
    being killed to be gone."""
    return left_running(lambda: {uid: count for uid, count in pool_processes(False).items()
                                 if uid in ours})


class PoolMonitor:
    """The most processes each grading user had at once, looked at every few ms."""

    def __init__(self) -> None:
        self.peaks: dict[int, int] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.wait(0.005):
            for uid, count in pool_processes().items():
                self.peaks[uid] = max(self.peaks.get(uid, 0), count)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(5)


def users_named_in(text: str) -> set[int]:
    """The grading users a grader's output names ('… run as user id 60004, …'): this
    run's own, as other gradings may run on the machine meanwhile."""
    return {int(uid) for uid in re.findall(r"run as user id (\d+)", text)}


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory):
    from test_batch import read_csv, run_batch
    root = tmp_path_factory.mktemp("hostile")
    subs, out = root / "submissions", root / "out"
    for name, prelude in (("ada", ""), ("ben", ""), ("saboteur", SABOTEUR),
                          ("forger", FORGER), ("forker", FORK_LOOP), ("zoe", "")):
        submission(subs / name, prelude)
    with PoolMonitor() as monitor:
        code, stdout, stderr, seconds = run_batch(subs, "--out", out, "--jobs", 3,
                                                  "--stage", 1, "--timeout", 90, limit=400)
    ours = users_named_in("".join(path.read_text(encoding="utf-8", errors="replace")
                                  for path in out.glob("*/feedback.txt")))
    left = ours_alive(ours)
    rows = {row[0]: row for row in read_csv(out / "grades.csv")[1:]}
    return {"code": code, "stderr": stderr, "out": out, "rows": rows, "left": left,
            "peak": max([monitor.peaks.get(uid, 0) for uid in ours] or [0]),
            "users": ours, "seconds": seconds}


def test_correct_students_keep_full_marks(hostile_class, report):
    rows = hostile_class["rows"]
    for student in ("ada", "ben", "zoe"):
        assert rows[student][1] == "27", (student, rows[student],
                                                    hostile_class["stderr"][-3000:])
    report("isolation: a class with a saboteur, a forger and a fork loop, --jobs 3: %.1f s; "
           "the fork loop's user had %d processes at most (bound %d tasks)"
           % (hostile_class["seconds"], hostile_class["peak"], TASK_BOUND))


def test_no_forged_score_is_on_file(hostile_class):
    for path in hostile_class["out"].rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            assert FORGED not in text, "%s holds the forged score:\n%s" % (path, text[:500])
            assert path.name != "forged.json", path
    assert set(hostile_class["rows"]) == {"ada", "ben", "forger", "forker", "saboteur", "zoe"}


# A program the grader starts is forked by root, then takes the grading's user: when
# the user is at its bound the kernel refuses that process its exec, but for a moment
# it is there, one more process of the user's (the next check's server or a spare).
GRADERS_OWN_MOMENT = 2


def test_the_fork_loop_stays_within_the_kernels_bound(hostile_class):
    assert 0 < hostile_class["peak"] <= TASK_BOUND + GRADERS_OWN_MOMENT, hostile_class["peak"]


def test_nothing_of_any_grading_user_is_left(hostile_class):
    assert len(hostile_class["users"]) >= 3, hostile_class["users"]   # --jobs 3: three at once
    assert hostile_class["left"] == {}, hostile_class["left"]


def test_the_saboteur_alone_through_the_gradescope_bundle(tmp_path):
    from test_gradescope import build, run_autograder, unpack_like_gradescope
    bundle = tmp_path / "autograder.zip"
    build(bundle, "--stage", "1", "--timeout", "90")
    unpack_like_gradescope(bundle, tmp_path)
    submission(tmp_path / "submission" / "work", SABOTEUR)
    results, output, _ = run_autograder(tmp_path, limit=240)
    assert 0 <= results["score"] < results["max_score"] == 27, json.dumps(results)[:2000]
    assert "a user of their own" in results["output"], results["output"]
    ours = users_named_in(output + results.get("output", ""))
    assert ours, output[-2000:]
    assert ours_alive(ours) == {}


def test_two_gradings_never_share_a_user():
    first = isolation.claim()
    second = isolation.claim()
    try:
        assert first is not None and second is not None and first.uid != second.uid
    finally:
        for user in (first, second):
            if user is not None:
                isolation.release(user)


def test_a_daemon_of_the_user_is_ended_at_release(tmp_path):
    """A process of the grading's user that left every group and scrubbed its
    environment is still ended when the grading ends."""
    user = isolation.claim()
    assert user is not None
    try:
        # A shell that leaves `sleep` behind in a new session, with an empty environment.
        subprocess.run(["/bin/sh", "-c", "(setsid sleep 60 > /dev/null 2>&1 &); exit 0"],
                       user=user.uid, group=user.gid, extra_groups=[], cwd="/", env={},
                       timeout=30)
        assert wait_until(lambda: isolation.processes_of(user.uid), timeout=5), \
            "the daemon did not start"
    finally:
        assert isolation.release(user)
    assert isolation.processes_of(user.uid) == []


def test_without_a_python_for_other_users_it_grades_as_root_and_says_so(monkeypatch, tmp_path):
    """No Python 3.10+ that another user can run: the programs run as root, the grader
    says so plainly (its output, so every student's feedback), and frees the id."""
    monkeypatch.setattr(users, "pythons", lambda: [])
    settings = limits.Limits()
    users.prepare_own_user(settings, KIT / "solutions", ["1_echo"], None)
    assert settings.uid is None and settings.user is None
    assert settings.who.startswith("WARNING: student programs run as root"), settings.who
    assert "no Python 3.10 or newer that another user can run" in settings.who


def test_batch_is_told_once_before_grading_when_no_python_fits(monkeypatch):
    """batch asks this once, before grading anyone, and says it on its first line."""
    assert users.unprivileged_python_missing() is None   # this machine has one
    monkeypatch.setattr(users, "pythons", lambda: [])
    assert "no Python 3.10 or newer" in users.unprivileged_python_missing()


LINKER = DAEMON + '''
_leave_a_daemon("""
import os, time
end = time.time() + 30
while time.time() < end:
    for pid in os.listdir("/proc"):
        try:
            words = open("/proc/%%s/cmdline" %% pid, "rb").read().decode().split("\\\\0")
        except (OSError, ValueError):
            continue
        if "--results" in words[:-1]:
            target = words[words.index("--results") + 1]
            try:
                os.unlink(target)
            except OSError:
                pass
            try:
                os.symlink(%r, target)   # root would write through it
            except OSError:
                pass
    time.sleep(0.01)
""")
'''


def test_results_in_a_folder_everyone_can_write_stay_the_graders(tmp_path):
    """--results in a world-writable folder: a daemon that keeps replacing the results
    file by a link to a file of root's changes nothing; the results are the grader's."""
    import tempfile
    shared = Path(tempfile.mkdtemp(prefix="chatkit-shared-", dir="/tmp"))   # reachable by all
    shared.chmod(0o1777)
    try:
        run_with_results_in(shared, tmp_path)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def run_with_results_in(shared: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("root's own file\n")
    impl = tmp_path / "impl"
    submission(impl, LINKER % str(victim))
    results = shared / "results.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "grader", "--impl", str(impl),
                           "--stage", "1", "-q", "--results", str(results)], cwd=KIT,
                          capture_output=True, text=True, timeout=300)
    assert victim.read_text() == "root's own file\n"
    assert results.is_file() and not results.is_symlink(), done.stdout[-2000:]
    graded = json.loads(results.read_text(encoding="utf-8"))
    assert graded["max_score"] == 27, graded
    assert "run as user id" in done.stdout, done.stdout[-2000:]


# --- --run-as: one user, shared by the gradings one after another ---------------------

sys.path.insert(0, str(Path(__file__).parent))
from test_containment import can_run_as_nobody, wait_until_nobody_is_idle  # noqa: E402


def nobody_can_grade() -> str:
    """Why the class can't be graded --run-as nobody here, or '' if it can."""
    return can_run_as_nobody()


def nobody() -> int:
    import pwd
    return pwd.getpwnam("nobody").pw_uid


@pytest.mark.skipif(bool(nobody_can_grade()), reason=nobody_can_grade() or "-")
def test_the_saboteur_class_under_run_as(tmp_path):
    """batch --run-as nobody --jobs 1, the saboteur graded first: its daemon (which kills
    every process of nobody) ends with its grading, so the three correct students
    after it keep full marks, and no process of nobody is left."""
    from test_batch import read_csv, run_batch
    wait_until_nobody_is_idle()
    subs, out = tmp_path / "submissions", tmp_path / "out"
    for name, prelude in (("a-saboteur", SABOTEUR), ("ben", ""), ("cleo", ""), ("zoe", "")):
        submission(subs / name, prelude)
    code, stdout, stderr, seconds = run_batch(subs, "--out", out, "--jobs", 1, "--stage", 1,
                                              "--timeout", 90, "--run-as", "nobody", limit=400)
    left = left_running(lambda: isolation.processes_of(nobody()))
    rows = {row[0]: row for row in read_csv(out / "grades.csv")[1:]}
    assert code == 0, stderr[-3000:]
    for student in ("ben", "cleo", "zoe"):
        assert rows[student][1] == "27", (student, rows[student], stderr[-3000:])
    assert rows["a-saboteur"][1] != "27", rows["a-saboteur"]
    assert left == [], [isolation.describe_process(pid) for pid in left]


@pytest.mark.skipif(bool(nobody_can_grade()), reason=nobody_can_grade() or "-")
def test_run_as_refuses_a_user_in_use(tmp_path):
    """A process of nobody running (the teacher's, or another grading's): the grader
    refuses --run-as nobody with one line, and leaves the process alone. So does a
    second grading while a first holds nobody."""
    impl = tmp_path / "impl"
    submission(impl)
    tmp_path.chmod(0o755)
    wait_until_nobody_is_idle()
    sleeper = subprocess.Popen(["sleep", "60"], user=nobody(), group=nobody(), extra_groups=[],
                               cwd="/")
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "grader", "--impl", str(impl),
                               "--stage", "1", "-q", "-p", "no:cacheprovider", "--run-as",
                               "nobody"], cwd=KIT, capture_output=True, text=True, timeout=120)
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        assert done.returncode != 0 and len(lines) == 1, lines
        assert lines[0].startswith("ERROR: --run-as nobody: nobody has 1 process running "
                                   "(pid %d (sleep 60))" % sleeper.pid), lines
        from test_batch import run_batch
        code, _, stderr, _ = run_batch(tmp_path, "--out", tmp_path.parent / (tmp_path.name + "-out"),
                                       "--jobs", 1, "--run-as", "nobody")
        assert code == 2 and stderr.startswith(
            "python -m grader batch: --run-as nobody: nobody has processes running (pid %d "
            "(sleep 60))" % sleeper.pid), stderr
        assert sleeper.poll() is None, "the grader ended a process it refused to touch"
    finally:
        sleeper.kill()
        sleeper.wait()
    wait_until_nobody_is_idle()
    first = isolation.claim_named(nobody(), nobody(), "nobody")
    try:
        with pytest.raises(ValueError, match="another grading runs its programs as nobody now"):
            isolation.claim_named(nobody(), nobody(), "nobody")
    finally:
        isolation.release(first)
