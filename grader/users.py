"""Who student programs run as: --run-as's user checked, or as root a user of the
grading's own (isolation.py), each with a Python 3.10+ that user can run.

What the user can read (its programs, the kit's startup hook) and run is found out
by a probe run as that user (RUN_AS_PROBE): permission bits alone can't tell. The
Limits (limits.py) it fills in: uid, gid, user, python, copy, startup, who.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from grader import isolation
from grader.system import POSIX


def prepare_own_user(limits, impl: Path, stages: list[str], results: Path | None) -> None:
    """As root, without --run-as: the programs run as a user of this grading's own
    (grader/isolation.py), reading a copy of the implementation if they cannot read
    it where it is. If no such user can run Python 3.10+, they run as root, and the
    grader says so plainly (in its header, so in every feedback)."""
    user = isolation.claim()
    if user is None:
        limits.who = ("WARNING: student programs run as root: no free user id in %d-%d"
                      % (isolation.FIRST_UID, isolation.FIRST_UID + isolation.POOL_SIZE - 1))
        return
    limits.uid, limits.gid, limits.user = user.uid, user.gid, user
    files = _program_files(impl, stages)
    found = _find_python(limits, files, results)
    if found is not None and only_the_hook(found):   # the kit is out of the user's reach
        limits.startup = isolation.readable_startup()
        found = _find_python(limits, _program_files(impl, stages, limits.startup /
                                                    STARTUP_HOOK.name), results)
    if found is not None and found["unreadable"]:
        limits.copy = isolation.readable_copy(impl, stages)
        hook = limits.copy.parent / ".startup" / STARTUP_HOOK.name
        found = _find_python(limits, _program_files(limits.copy, stages, hook), results)
    if found is None or found["unreadable"]:
        isolation.release(user)
        limits.uid = limits.gid = limits.user = None
        for made in (limits.copy, limits.startup):
            if made is not None:
                isolation.remove_copy(made)
        limits.copy = limits.startup = None
        why = ("no Python 3.10 or newer that another user can run (tried %s)"
               % ", ".join(pythons()))
        limits.who = ("WARNING: student programs run as root, with every right on this "
                      "machine: %s" % why)
        return
    limits.who = "student programs run as %s, this grading's own" % user


# What every program runs first (programs.py): its user must be able to read it too, or the
# program would run without it (no hard limits, no Where:, other line endings), silently.
STARTUP_HOOK = Path(__file__).resolve().parent / "startup" / "sitecustomize.py"


def only_the_hook(found: dict) -> bool:
    """Whether the one file the probe could not read is the kit's startup hook."""
    return [entry.rpartition(" (")[0] for entry in found["unreadable"]] == [str(STARTUP_HOOK)]


def _program_files(impl: Path, stages: list[str], hook: Path = STARTUP_HOOK) -> list[str]:
    """The files the programs must read: theirs (each stage's modules), protocol.py and
    todo.py, and the startup hook (a copy has its own, next to the implementation:
    isolation.readable_copy)."""
    programs = ("chat_server.py", "chat_client.py")   # first: a refusal names the first
    files = [str(impl / stage / name) for stage in stages for name in programs
             if (impl / stage / name).is_file()]
    files += [str(path) for stage in stages for path in sorted((impl / stage).glob("*.py"))
              if path.name not in programs]
    kit = [impl / name for name in ("protocol.py", "todo.py")] + \
        [impl.parent / name for name in ("protocol.py", "todo.py")]
    # The hook comes last: a refusal names the student's own file first.
    return files + [str(path) for path in kit if path.is_file()] + [str(hook)]


def _find_python(limits, files: list[str], results: Path | None) -> dict | None:
    """What the first Python 3.10+ that limits.uid can run found (see RUN_AS_PROBE),
    with its path as found["python"] (also set as limits.python); None if none."""
    found = _first_python(limits.uid, limits.gid, files, results)
    if found is not None:
        limits.python = found["python"]
    return found


def _first_python(uid: int, gid: int, files: list[str], results: Path | None) -> dict | None:
    """What the first Python 3.10+ that `uid` can run found, its path as found["python"]."""
    for python in pythons():
        found = _probe(python, uid, gid, files, results)
        if found is not None and tuple(found["version"]) >= (3, 10):
            found["python"] = python
            return found
    return None


def unprivileged_python_missing() -> str | None:
    """As root on Linux: why student programs would have to run as root (no Python
    3.10+ that a user of their own can run), or None when they need not."""
    if not isolation.possible():
        return None
    user = isolation.claim()
    if user is None:
        return "no free user id"
    try:
        found = _first_python(user.uid, user.gid, [], None)
    finally:
        isolation.release(user)
    return None if found else ("no Python 3.10 or newer that another user can run (tried %s)"
                               % ", ".join(pythons()))


def release_user(limits) -> None:
    """End every process of this grading's user (its own, or --run-as), remove every
    file its programs wrote, then free the user (and the copy)."""
    user, copy, written = limits.user, limits.copy, limits.written
    startup = limits.startup
    # once: Ctrl-C or SIGTERM may come during the end
    limits.user = limits.copy = limits.written = limits.startup = None
    ended = isolation.end_every_process(user.uid) if user is not None else True
    if written is not None:
        written.remove_all(scratch_too=True)
    if user is not None and ended:
        os.close(user.lock)   # if not all ended, the id stays ours until this process exits
    if copy is not None:
        isolation.remove_copy(copy)
    if startup is not None:
        isolation.remove_copy(startup)


# What the user --run-as names checks for itself, as itself (a privileged grader
# can't tell by looking at permission bits alone: groups, ACLs, a folder on the
# way that it can't enter...). Prints one JSON line.
RUN_AS_PROBE = r"""
import json, os, sys
files, results = json.loads(sys.argv[1]), sys.argv[2]
found = {"version": list(sys.version_info[:2]), "unreadable": [], "results": []}
for path in files:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as error:
        found["unreadable"].append("%s (%s)" % (path, error.strerror))
if results and os.access(os.path.dirname(results), os.W_OK):
    found["results"].append(os.path.dirname(results))
print(json.dumps(found))
"""


def prepare_run_as(limits, user: str, impl: Path, stages: list[str],
                   results: Path | None) -> None:
    """Check that student programs can run as `user`, and find the Python they run with."""
    if not POSIX:
        raise ValueError("--run-as %s: only on Linux or macOS (on Windows, grade inside a "
                         "virtual machine or a container instead)" % user)
    import pwd
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ValueError("--run-as %s: no such user (use an existing unprivileged user, e.g. "
                         "nobody, or create one: useradd --no-create-home student)" % user) from None
    if entry.pw_uid == 0:
        raise ValueError("--run-as %s: that is root; name an unprivileged user kept for grading"
                         % user)
    if os.geteuid() != 0:
        raise ValueError("--run-as %s: only a grader running as root can start programs as "
                         "another user (this one runs as %s): run it as root, or leave out "
                         "--run-as" % (user, pwd.getpwuid(os.geteuid()).pw_name))
    limits.run_as, limits.uid, limits.gid = user, entry.pw_uid, entry.pw_gid
    limits.who = "student programs run as %s" % user
    # Held as a grading's own user is: this grading alone, nothing of it running before,
    # every process of it ended when the grading ends (release_user).
    limits.user = isolation.claim_named(entry.pw_uid, entry.pw_gid, user)
    try:
        _check_run_as(limits, user, impl, stages, results)
    except BaseException:
        release_user(limits)
        raise


def _check_run_as(limits, user: str, impl: Path, stages: list[str],
                  results: Path | None) -> None:
    files = _program_files(impl, stages)
    tried = []
    for python in pythons():
        found = _probe(python, limits.uid, limits.gid, files, results)
        if found is None or tuple(found["version"]) < (3, 10):
            tried.append(python)
            continue
        if only_the_hook(found):   # the kit is out of USER's reach: a copy of its hook
            limits.startup = limits.startup or isolation.readable_startup()
            hook = limits.startup / STARTUP_HOOK.name
            found = _probe(python, limits.uid, limits.gid, _program_files(impl, stages, hook),
                           results)
            if found is None:
                tried.append(python)
                continue
        if found["unreadable"]:
            raise ValueError("--run-as %s: %s cannot read %s; the implementation folder must be "
                             "readable by that user (chmod -R a+rX %s, or grade a copy in a "
                             "folder it can read)" % (user, user, found["unreadable"][0], impl))
        if found["results"]:
            raise ValueError("--run-as %s: %s can write in %s, so a student's program could "
                             "replace the results: write them in a folder only you can write"
                             % (user, user, found["results"][0]))
        if results is not None:
            _make_private(results)
        limits.python = python
        return
    raise ValueError("--run-as %s: %s cannot run Python 3.10 or newer (tried %s); install one "
                     "where every user can run it (e.g. /usr/bin/python3)"
                     % (user, user, ", ".join(tried)))


def pythons() -> list[str]:
    """The grader's own Python first, then the system's (a Python installed in root's
    home folder, as pyenv does, is out of other users' reach)."""
    import shutil
    found = []
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3",
                      "/usr/local/bin/python3"):
        if candidate and os.path.isfile(candidate) and candidate not in found:
            found.append(candidate)
    return found


def _probe(python: str, uid: int, gid: int, files: list[str], results: Path | None):
    import json
    try:
        done = subprocess.run(
            [python, "-c", RUN_AS_PROBE, json.dumps(files), str(results or "")],
            capture_output=True, timeout=30, cwd="/", user=uid, group=gid,
            extra_groups=[], env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        return json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def _make_private(path: Path) -> None:
    """A results file left from before becomes the grader's alone (what it writes
    from now on is, through its umask)."""
    try:
        if path.is_symlink() or (path.exists() and path.stat().st_uid != os.geteuid()):
            path.unlink()
        elif path.exists():
            path.chmod(0o600)
    except OSError as error:
        raise ValueError("--results %s: cannot make it private (%s)"
                         % (path, error.strerror or error)) from None
