"""A user of its own for each grading (Linux, the grader running as root).

Student programs are untrusted. When the grader runs as root (a teacher's
server, a container, CI, Gradescope), they must never run as root, and one
grading's programs must not be able to signal, trace, read or write another's.
So, as isolate (the IOI's contest sandbox) does with its boxes, each grading
claims a user id of its own from a pool, for as long as it runs:

* the id has no passwd entry and no process when it is claimed, and a lock
  (flock on a root-only file) keeps every other grading off it meanwhile;
  the lock goes with the grading's process, however that process ends;
* the programs run as that id, with the kernel's per-user limit on tasks
  (RLIMIT_NPROC: processes and threads together), set before they exist;
* when the grading ends, every process of that id is killed (kill(-1) from a
  process of that id: daemons that left the process group and scrubbed their
  environment included), before the lock lets another grading have the id.

The user --run-as names is held the same way (`claim_named`): a lock, no process
of it at the start (refused, not killed: it may be the teacher's), every process
of it killed at the end.

Where the programs need to read the implementation and cannot (a folder only
root can read), they get a copy where they can (`readable_copy`): the whole
implementation folder and the Python modules next to it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from grader.system import LINUX

FIRST_UID = 60000          # the pool: FIRST_UID ... FIRST_UID + POOL_SIZE - 1 (isolate's too)
POOL_SIZE = 1000
# Root's alone: the locks, and copies the programs can read (macOS has no /run).
HOME = Path("/run/chatkit" if LINUX else "/var/run/chatkit")
END_WAIT = 5.0             # seconds to see every process of a user gone
# Never open through a symbolic link. Windows has no O_NOFOLLOW: there O_EXCL alone
# refuses a path where a link already is.
NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


@dataclass
class GradingUser:
    uid: int
    gid: int
    lock: int     # the open, flock'ed lock file: the id is ours while it is open

    def __str__(self) -> str:
        return "user id %d" % self.uid


def possible() -> bool:
    """Whether this grader can give programs a user of their own: Linux, as root."""
    return LINUX and os.geteuid() == 0


def claim() -> GradingUser | None:
    """A user id no other grading uses while this one runs, or None if none is free."""
    import fcntl   # POSIX only, as is every caller (see possible()): Windows has no fcntl
    locks = private_folder(HOME / "users")
    for uid in range(FIRST_UID, FIRST_UID + POOL_SIZE):
        if has_passwd_entry(uid):
            continue
        fd = os.open(locks / str(uid), os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)          # another grading has it
            continue
        if processes_of(uid):     # not ours to kill: leave that id alone
            os.close(fd)
            continue
        return GradingUser(uid, uid, fd)
    return None


def claim_named(uid: int, gid: int, name: str) -> GradingUser:
    """The user --run-as names, for this grading alone, on the terms of a user of the
    grading's own: no other grading under it meanwhile (a lock, as for the pool's
    ids), and no process of it already running (the grader ends every process of
    that user when the grading ends, so it must be a user kept for grading, with
    nothing the teacher needs). ValueError, one line saying why, if not."""
    import fcntl   # POSIX only, as --run-as is
    try:
        locks = private_folder(HOME / "users")
    except OSError as error:
        raise ValueError("--run-as %s: cannot make the grader's folder %s (%s)"
                         % (name, HOME, error.strerror or error)) from None
    fd = os.open(locks / ("run-as-%d" % uid), os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ValueError("--run-as %s: another grading runs its programs as %s now; gradings "
                         "under one user must run one after another (or leave out --run-as: "
                         "as root, each grading gets a user of its own)" % (name, name)) from None
    running = processes_of(uid)
    if running:
        os.close(fd)
        raise ValueError("--run-as %s: %s has %d process%s running (%s): the grader ends every "
                         "process of that user when a grading ends, so give it a user kept "
                         "for grading alone, with nothing running (e.g. useradd --no-create-home "
                         "--shell /usr/sbin/nologin chatkit-student)"
                         % (name, name, len(running), "" if len(running) == 1 else "es",
                            ", ".join(describe_process(pid) for pid in running[:3])))
    return GradingUser(uid, gid, fd)


def describe_process(pid: int) -> str:
    """'pid 812 (sleep 60)': a process, as a teacher finds it again in ps."""
    try:
        words = Path("/proc/%d/cmdline" % pid).read_bytes().split(b"\0")
        command = b" ".join(word for word in words if word).decode("utf-8", "replace")
    except OSError:
        command = ""
    return "pid %d (%s)" % (pid, command[:60]) if command else "pid %d" % pid


def release(user: GradingUser) -> bool:
    """End every process of the user, then let other gradings have the id. Whether
    everything ended (if not, the id stays locked until this process exits, and the
    next grading skips it while any of its processes live)."""
    ended = end_every_process(user.uid)
    if ended:
        os.close(user.lock)
    return ended


def end_every_process(uid: int, within: float = END_WAIT) -> bool:
    """Kill every process of `uid` and wait until none is left (or `within` s pass).

    Root kills each process it finds, again while any is left (the kernel's bound
    on the user's tasks keeps a fork loop from outrunning that). Should some still
    be there after a while, kill(-1, SIGKILL) from a process running as `uid`
    reaches every process of that user at once, wherever it went, nobody else's."""
    deadline = time.monotonic() + within
    sweeps = 0
    while True:
        found = processes_of(uid)
        if not found:
            return True
        if time.monotonic() >= deadline:
            return False
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass   # gone already
        sweeps += 1
        if sweeps % 20 == 0:
            _kill_all_as(uid)
        time.sleep(0.005)   # let the killed be reaped before looking again


def _kill_all_as(uid: int) -> None:
    """kill(-1, SIGKILL) run as `uid`: every process of that user but the killer."""
    try:
        subprocess.run(["/bin/sh", "-c", "kill -KILL -1"], user=uid, group=uid,
                       extra_groups=[], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=5, cwd="/")
    except (OSError, subprocess.SubprocessError):
        pass   # refused a process (the user is at its bound): root's sweeps go on


def processes_of(uid: int) -> list[int]:
    """The live processes (not zombies) whose real user id is `uid`: Linux /proc,
    elsewhere (macOS, --run-as) ps."""
    if not LINUX:
        return processes_in_ps(_ps_users(), uid)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue   # it ended meanwhile
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        try:
            real_uid = int(fields["Uid"].split()[0])
        except (KeyError, ValueError, IndexError):
            continue
        if real_uid == uid and not fields.get("State", "").strip().startswith("Z"):
            found.append(int(entry.name))
    return found


def _ps_users() -> str:
    try:
        return subprocess.run(["ps", "-A", "-o", "pid=,ruid=,state="], capture_output=True,
                              text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def processes_in_ps(listing: str, uid: int) -> list[int]:
    """The pids of `uid`'s live processes in `ps -A -o pid=,ruid=,state=`'s lines
    ('  412   501 Ss'); zombies (state Z) left out."""
    found = []
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].isdigit() and fields[1] == str(uid) \
                and not (len(fields) > 2 and fields[2].startswith("Z")):
            found.append(int(fields[0]))
    return found


def has_passwd_entry(uid: int) -> bool:
    import pwd
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def private_folder(path: Path) -> Path:
    """`path`, a folder that root alone can write (created if need be); ValueError if
    it exists but is not root's, or is a link (someone else placed it there)."""
    path.mkdir(mode=0o711, parents=True, exist_ok=True)
    info = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path) or info.st_uid != 0 \
            or info.st_mode & 0o022:
        raise ValueError("%s is not a folder that root alone can write: remove it" % path)
    return path


def readable_copy(impl: Path, stages: list[str]) -> Path:
    """A copy of `impl` that every user can read but only root can change: what a
    program may legitimately reach, as it is laid out where it was. That is the whole
    implementation folder (the stage folders, and any module or package of the
    student's at its top) and the Python modules next to it (protocol.py, and a
    helper a program imports from there, as the stages' sys.path lines allow).
    Nothing else of the folder around it: that may be anyone's (a home folder).
    Same folder names, so every message reads the same once the copy's place is
    replaced by the folder given (grading.py: `given_names`). Symbolic links are
    copied as links: what they point to is read with the programs' own rights."""
    root = Path(tempfile.mkdtemp(prefix="copy-", dir=private_folder(HOME / "copies")))
    os.chmod(root, 0o755)
    copy = root / impl.name
    shutil.copytree(impl, copy, symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))
    for entry in impl.parent.glob("*.py"):
        if entry.is_file() and not entry.is_symlink():
            shutil.copy(entry, root / entry.name)
    startup = Path(__file__).resolve().parent / "startup"   # what every program runs first
    if startup.is_dir():
        shutil.copytree(startup, root / ".startup", ignore=shutil.ignore_patterns("__pycache__"))
    for path in [root, *root.rglob("*")]:   # a program built from C stays runnable
        if not path.is_symlink():
            runs = path.is_dir() or os.stat(path).st_mode & 0o100
            os.chmod(path, 0o755 if runs else 0o644)
    return copy


def readable_startup() -> Path:
    """A copy of the grader's startup hook (grader/startup) that every user can read, for
    an implementation they can read where the kit is out of their reach: its .startup
    folder, as in a readable_copy (remove it with remove_copy)."""
    root = Path(tempfile.mkdtemp(prefix="startup-", dir=private_folder(HOME / "copies")))
    startup = root / ".startup"
    shutil.copytree(Path(__file__).resolve().parent / "startup", startup,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for path in [root, *root.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return startup


def remove_copy(copy: Path) -> None:
    shutil.rmtree(copy.parent, ignore_errors=True)


def write_out_of_reach(path: Path, text: str) -> None:
    """Write `path` so that nothing a student's program placed there beforehand counts:
    a new file (O_EXCL, never through a link) renamed over whatever `path` was (a
    planted link is replaced, not followed)."""
    partial = path.with_name("%s.%d.partial" % (path.name, os.getpid()))
    try:
        os.unlink(partial)
    except FileNotFoundError:
        pass
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NO_FOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(partial, path)
