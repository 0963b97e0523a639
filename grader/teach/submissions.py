"""One student's submission: find it, copy it into a private folder, grade it.

Shared by `python -m grader batch` (a whole class) and the Gradescope
autograder (one submission). A submission is a folder or a .zip holding, at
the top or inside one wrapping folder (such as `chat-kit-main/`):

  * a copy of the kit: the stage folders under `stages/`, next to protocol.py;
  * or the stage folders themselves (1_echo ... 4_exit), with or without protocol.py;
  * or, when a single stage is graded, that stage's chat_server.py and
    chat_client.py loose (what an upload of two files gives on Gradescope).

`prepare()` copies what will be graded into a new private folder, always as

    <private>/protocol.py               the student's, or the kit's when they have none
    <private>/impl/<stage>/...          the stage folders being graded
    <private>/impl/protocol.py          the same protocol.py again

so a program finds protocol.py whether it looks next to the stage folders or
two folders up. Anything else (no stage folder, two copies of the kit, a .zip
that is not one or that tries to write outside its folder, a huge one) raises
SubmissionProblem with a message written for the student: nothing is guessed
at silently. `grade()` then runs the real grader on the private folder, as its
own process group, and stops it at a time limit.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from grader import catalog
from grader.stages import STAGES
from grader.system import POSIX

KIT = Path(__file__).resolve().parents[2]


def graders_files() -> list[Path]:
    """The grader students run, as copies of it hold it: grader/'s modules, its system/
    package and its startup hook (not teach/: the teachers' tools)."""
    grader = KIT / "grader"
    return [path for folder in (grader, grader / "system", grader / "startup")
            for path in sorted(folder.glob("*.py"))]

# What a submission may not exceed (once unpacked, not counting the junk below).
MAX_BYTES = 50 * 1024 * 1024
MAX_FILES = 5000
SEARCH_DEPTH = 2            # the top, one wrapping folder, and one more level
KILL_GRACE = 5.0            # seconds the grader gets to stop its programs after SIGTERM
OUTPUT_LIMIT = 1024 * 1024  # how much of the grader's own output is kept (its end)

# Never part of a submission: editors', systems' and tools' leftovers.
JUNK_NAMES = {"__MACOSX", ".git", "__pycache__", ".DS_Store", "Thumbs.db", ".idea",
              ".vscode", ".pytest_cache", "venv", ".venv", "node_modules"}
# Never searched for a student's work: the kit's own folders of other people's code.
NOT_THEIRS = {"solutions", "tests"}

NO_SUBMISSION = "no submission"
ERROR = "error"


def expected(stages: list[str] | None = None) -> str:
    """What a submission holds, naming the stage folders the assignment grades."""
    stages = stages or list(STAGES)
    one = len(stages) == 1
    return ("Expected: the stage folder%s %s%s chat_server.py and chat_client.py, or a "
            "copy of the kit with %s under stages/ (as a folder or a .zip; one wrapping "
            "folder, such as chat-kit-main/, is fine)."
            % ("" if one else "s", ", ".join(stages), " with" if one else ", each with",
               "it" if one else "them"))


class SubmissionProblem(Exception):
    """A submission that can't be graded: `status` is "no submission" or "error"."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Prepared:
    """A submission copied into a private folder, ready to grade."""
    folder: Path          # the private folder (delete it with cleanup())
    impl: Path            # folder/impl: what `--impl` gets
    found: str            # where the work was found, for the feedback
    notes: list[str] = field(default_factory=list)
    fingerprint: str = ""
    names: dict[str, str] = field(default_factory=dict)   # a path of the copy: what it was

    def describe(self) -> str:
        return "\n".join(["Your work was found in %s." % self.found] + self.notes)

    def given(self, text: str) -> str:
        """`text` naming what was submitted where it names the private copy (the grader
        names the folder it was given: this copy), so that what a student reads is true."""
        for copied in sorted(self.names, key=len, reverse=True):
            text = text.replace(copied, self.names[copied])
        return text

    def as_given(self, grading: "Grading") -> "Grading":
        """The grading's output and results, naming what was submitted (see given())."""
        results = grading.results
        if isinstance(results, dict):
            results = dict(results)
            if isinstance(results.get("output"), str):
                results["output"] = self.given(results["output"])
            if isinstance(results.get("tests"), list):
                results["tests"] = [dict(t, output=self.given(t["output"]))
                                    if isinstance(t, dict) and isinstance(t.get("output"), str)
                                    else t for t in results["tests"]]
        return Grading(grading.status, results, self.given(grading.output), grading.seconds,
                       grading.exit_code)

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def is_junk(name: str) -> bool:
    return name in JUNK_NAMES or name.startswith("._") or name.endswith(".pyc")


# --- finding the work ----------------------------------------------------------

def prepare(source: Path, stages: list[str] | None = None, readable: bool = False) -> Prepared:
    """Copy the submission at `source` (a folder or a .zip) into a new private folder.

    `stages`: the stage folders to take (default: all). `readable`: let other users
    read the copy (for `--run-as`). Raises SubmissionProblem.
    """
    stages = stages or list(STAGES)
    folder = Path(tempfile.mkdtemp(prefix="chatkit-submission-"))
    try:
        base = shown = Path(source)   # shown: how the submission is named to the student
        if base.is_file():
            if base.suffix.lower() != ".zip":
                raise SubmissionProblem(ERROR, "%s is a file, not a folder or a .zip."
                                        % base.name)
            base = unpack(base, folder / "unpacked")
        elif not base.is_dir():
            raise SubmissionProblem(NO_SUBMISSION, "Nothing was submitted. " + expected(stages))
        else:
            lone = lone_zip(base)
            if lone is not None:   # a .zip uploaded as it was, and nothing else
                base, shown = unpack(lone, folder / "unpacked"), lone
        prepared = arrange(base, folder, stages)
        # The grader names the folder it is given as it resolves it (on macOS /tmp is
        # /private/tmp): both spellings of each path of the copy are named back.
        prepared.names = {spelling: given(shown, base, original)
                          for copy, original in prepared.names.items()
                          for spelling in (copy, str(Path(copy).resolve()))}
        shutil.rmtree(folder / "unpacked", ignore_errors=True)
        prepared.fingerprint = fingerprint(prepared.folder, stages)
        if readable:
            make_readable(folder)
        return prepared
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def given(source: Path, base: Path, original: Path) -> str:
    """How a file or folder of the submission is named to the student: `source` (the
    folder or .zip as given), then its path inside (what a .zip unpacked to, `base`)."""
    if original.is_relative_to(source):
        return str(original)
    if not original.is_relative_to(base):
        return str(original)   # the kit's own protocol.py
    inside = original.relative_to(base).as_posix()
    return str(source) if inside == "." else "%s/%s" % (source, inside)


def lone_zip(base: Path) -> Path | None:
    entries = [e for e in base.iterdir() if not is_junk(e.name)]
    if len(entries) == 1 and entries[0].is_file() and entries[0].suffix.lower() == ".zip":
        return entries[0]
    return None


def children(folder: Path) -> list[Path]:
    """The folder's entries worth looking at: no junk, no symbolic links."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [e for e in entries if not is_junk(e.name) and not e.is_symlink()]


def stage_folders(folder: Path) -> list[str]:
    return [s for s in STAGES if (folder / s).is_dir() and not (folder / s).is_symlink()]


def find_candidates(folder: Path, depth: int = 0) -> list[tuple[Path, Path]]:
    """Every place that holds stage folders: (folder holding them, folder of protocol.py)."""
    found = []
    if stage_folders(folder):
        found.append((folder, folder))
    kit_stages = folder / "stages"
    if kit_stages.is_dir() and not kit_stages.is_symlink() and stage_folders(kit_stages):
        found.append((kit_stages, folder))
    if found or depth >= SEARCH_DEPTH:
        return found
    for child in children(folder):
        if child.is_dir() and child.name not in NOT_THEIRS:
            found += find_candidates(child, depth + 1)
    return found


def find_loose(folder: Path, depth: int = 0) -> list[Path]:
    """Folders holding chat_server.py or chat_client.py directly (files uploaded loose)."""
    if any((folder / f).is_file() for f in ("chat_server.py", "chat_client.py")):
        return [folder]
    if depth >= SEARCH_DEPTH:
        return []
    found = []
    for child in children(folder):
        if child.is_dir() and child.name not in NOT_THEIRS:
            found += find_loose(child, depth + 1)
    return found


def relative(path: Path, base: Path) -> str:
    rel = path.relative_to(base).as_posix()
    return "the top of the submission" if rel == "." else rel + "/"


def where(holder: Path, kit_root: Path, base: Path) -> str:
    """Where stage folders were found, in words: 'chat-kit-main/ (a copy of the kit ...)'."""
    if holder != kit_root:
        return "%s (a copy of the kit: the stage folders in stages/)" % relative(kit_root, base)
    return "%s (the stage folders)" % relative(holder, base)


def arrange(base: Path, folder: Path, stages: list[str]) -> Prepared:
    """Find the work in `base` and copy it into folder/impl (see the module's doc)."""
    if not has_files(base):
        raise SubmissionProblem(NO_SUBMISSION, "The submission is empty: no files in it. "
                                + expected(stages))
    impl = folder / "impl"
    impl.mkdir()
    candidates = find_candidates(base)
    if len(candidates) > 1:
        places = ", ".join(where(holder, kit_root, base) for holder, kit_root in candidates)
        raise SubmissionProblem(ERROR, "Found more than one copy of the stage folders: %s. "
                                       "Submit exactly one." % places)
    budget = Budget()
    if candidates:
        holder, kit_root = candidates[0]
        found = where(holder, kit_root, base)
        present = stage_folders(holder)
        for stage in stages:
            if stage in present:
                copy_tree(holder / stage, impl / stage, budget)
        missing = [s for s in stages if s not in present]
        notes = (["No folder %s in the submission: %s zero."
                  % (", ".join(missing), "that stage scores" if len(missing) == 1
                     else "those stages score")]
                 if missing else [])
        names = {impl / stage: holder / stage for stage in stages}
        names[impl] = holder
        protocol = kit_root / "protocol.py"
    else:
        loose = find_loose(base)
        if not loose:
            raise SubmissionProblem(ERROR, "No stage folder found in the submission. "
                                    + expected(stages) + " Found: " + top_listing(base) + ".")
        if len(stages) != 1 or len(loose) > 1:
            raise SubmissionProblem(ERROR, "chat_server.py and chat_client.py are not in a "
                                    "stage folder, so it is not clear which stage they are. "
                                    + expected(stages))
        holder = loose[0]
        found = "%s (the files of stage %s)" % (relative(holder, base), stages[0])
        notes = []
        copy_tree(holder, impl / stages[0], budget, files_only=True)
        protocol = holder / "protocol.py"
        names = {impl / stages[0]: holder, impl: holder}
    if protocol.is_file() and not protocol.is_symlink():
        shutil.copyfile(protocol, folder / "protocol.py")
    else:
        protocol = KIT / "protocol.py"
        shutil.copyfile(protocol, folder / "protocol.py")
        notes.append("The submission has no protocol.py next to its stage folders: "
                     "the kit's protocol.py was used.")
    shutil.copyfile(folder / "protocol.py", impl / "protocol.py")
    names.update({impl / "protocol.py": protocol, folder / "protocol.py": protocol})
    for place in (folder, impl):   # the skeletons' stand-ins, for a TODO left undone
        shutil.copyfile(KIT / "todo.py", place / "todo.py")
    return Prepared(folder, impl, found, notes,
                    names={str(copy): original for copy, original in names.items()})


def prepare_named_within(folder: Path, stages: list[str] | None = None,
                         readable: bool = False) -> Prepared:
    """prepare() the submission in `folder`, its files named as they are within it
    (`stages/1_echo/server.py`): how the student who submitted it knows them, where the
    platform's own path of it (/autograder/submission/...) would mean nothing to them."""
    here = os.getcwd()
    os.chdir(folder)
    try:
        return prepare(Path("."), stages, readable)
    finally:
        os.chdir(here)


def has_files(base: Path) -> bool:
    for root, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not is_junk(d)]
        if any(not is_junk(f) for f in files):
            return True
    return False


def top_listing(base: Path, limit: int = 8) -> str:
    names = [e.name + ("/" if e.is_dir() else "") for e in children(base)]
    if not names:
        return "nothing but hidden or system files"
    more = " and %d more" % (len(names) - limit) if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


class Budget:
    """Counts what a submission's copy takes, and stops it at the limits."""

    def __init__(self) -> None:
        self.bytes = 0
        self.files = 0

    def take(self, size: int) -> None:
        self.bytes += size
        if self.bytes > MAX_BYTES:
            raise SubmissionProblem(ERROR, "The submission is larger than %d MB once "
                                    "unpacked: submit only your code." % (MAX_BYTES >> 20))

    def count_file(self) -> None:
        self.files += 1
        if self.files > MAX_FILES:
            raise SubmissionProblem(ERROR, "The submission holds more than %d files: "
                                    "submit only your code." % MAX_FILES)


def copy_tree(source: Path, target: Path, budget: Budget, files_only: bool = False) -> None:
    """Copy a folder's files (no junk, no symbolic links), within the budget."""
    target.mkdir(parents=True, exist_ok=True)
    for root, dirs, files in os.walk(source):
        dirs[:] = [] if files_only else sorted(
            d for d in dirs if not is_junk(d) and not os.path.islink(os.path.join(root, d)))
        here = target / Path(root).relative_to(source)
        here.mkdir(parents=True, exist_ok=True)
        for name in sorted(files):
            path = Path(root) / name
            if is_junk(name) or path.is_symlink() or not path.is_file():
                continue
            budget.count_file()
            budget.take(path.stat().st_size)
            shutil.copyfile(path, here / name)
            if path.stat().st_mode & 0o100:   # a program built from C: it stays runnable
                os.chmod(here / name, 0o755)  # (the bit alone: never set-user-id)


# --- unpacking a .zip, safely -----------------------------------------------------

def unpack(archive: Path, target: Path) -> Path:
    """Unpack a student's .zip into `target`, refusing anything unsafe.

    Every member path must stay inside `target` (no absolute paths, no `..`: a
    "zip slip" could otherwise overwrite any file). Symbolic links are not
    created, junk (__MACOSX/, .git/, __pycache__/) is skipped, and the real
    unpacked size is counted as it is written, whatever the .zip claims.
    """
    target.mkdir(parents=True)
    budget = Budget()
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                parts = safe_parts(info.filename, archive.name)
                if not parts or any(is_junk(p) for p in parts) or info.is_dir():
                    continue
                if stat.S_ISLNK(info.external_attr >> 16):
                    continue   # a symbolic link could point anywhere: not followed, not made
                budget.count_file()
                path = target.joinpath(*parts)
                path.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(path, "wb") as dst:
                    while True:
                        chunk = src.read(1 << 16)
                        if not chunk:
                            break
                        budget.take(len(chunk))
                        dst.write(chunk)
    except SubmissionProblem:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise SubmissionProblem(ERROR, "%s is not a valid .zip file (%s)." % (archive.name, error))
    except RuntimeError as error:   # e.g. a password-protected member
        raise SubmissionProblem(ERROR, "%s could not be unpacked: %s" % (archive.name, error))
    except (OSError, ValueError, NotImplementedError) as error:
        raise SubmissionProblem(ERROR, "%s could not be unpacked: %s" % (archive.name, error))
    return target


def safe_parts(name: str, archive: str) -> list[str]:
    """A member's path as parts, or SubmissionProblem if it would leave the folder."""
    name = name.replace("\\", "/")
    unsafe = name.startswith("/") or (len(name) > 1 and name[1] == ":")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".", "/")]
    if unsafe or ".." in parts or any("\0" in p for p in parts):
        raise SubmissionProblem(ERROR, "%s holds a file whose path leaves the folder (%r): "
                                       "it was not unpacked. Make the .zip again from your "
                                       "folder." % (archive, name))
    return parts


# --- the fingerprint: has anything graded changed? -----------------------------------

def fingerprint(folder: Path, stages: list[str]) -> str:
    """A hash of every graded file's path and contents, and of what grades them."""
    digest = hashlib.sha256()
    digest.update(("stages:" + ",".join(stages) + "\n").encode())
    digest.update(("grader:" + grader_version() + "\n").encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        digest.update(("%s\0%d\0" % (path.relative_to(folder).as_posix(), len(data))).encode())
        digest.update(data)
    return digest.hexdigest()


def grader_version() -> str:
    """A hash of the grader's checks and machinery (not of these tools)."""
    tools = {"__main__.py", "batch.py", "gradescope.py", "handout.py", "submissions.py",
             "load.py", "classroom.py"}
    digest = hashlib.sha256()
    for path in sorted((KIT / "grader").glob("*.py")):
        if path.name not in tools:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def make_readable(folder: Path) -> None:
    """Let another user (--run-as) read and run the copy; only its owner may change it."""
    for root, dirs, files in os.walk(folder):
        os.chmod(root, 0o755)
        for name in files:   # a program built from C stays runnable
            path = os.path.join(root, name)
            os.chmod(path, 0o755 if os.stat(path).st_mode & 0o100 else 0o644)


# --- grading ------------------------------------------------------------------------

@dataclass
class Grading:
    """One run of the grader on a prepared submission."""
    status: str            # "graded", "timeout" or "error"
    results: dict | None   # what the grader wrote with --results (when graded)
    output: str            # what the grader printed (its end, when very long)
    seconds: float
    exit_code: int | None


def grade(impl: Path, stages: list[str] | None, timeout: float, work: Path,
          run_as: str | None = None, extra: list[str] | None = None,
          on_start=None) -> Grading:
    """Run `python -m pytest grader --impl IMPL --results ...` from the kit, within `timeout`.

    The grader runs in its own process group: at the time limit it gets SIGTERM
    (it then stops every program it started), and SIGKILL if still there after
    KILL_GRACE seconds. `work` is a private folder for its results and output.
    `on_start(proc)` / the returned Grading let a caller track the running process.
    """
    results_path = work / "results.json"
    output_path = work / "grader-output.txt"
    command = [sys.executable, "-m", "pytest", "grader", "--impl", str(impl),
               "--results", str(results_path), "-q", "-p", "no:cacheprovider", "--color=no"]
    for stage in stages or []:
        command += ["--stage", stage]
    if run_as:
        command += ["--run-as", run_as]
    command += extra or []
    # UTF-8 whatever the console's code page (Windows): the feedback is written in it.
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONIOENCODING="utf-8",
               PYTHONUTF8="1")
    env.pop("PYTEST_ADDOPTS", None)
    started = time.monotonic()
    with open(output_path, "wb") as out:
        proc = subprocess.Popen(command, cwd=KIT, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=POSIX)
        if on_start:
            on_start(proc)
        try:
            code = proc.wait(timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            stop(proc)
            code, timed_out = None, True
        except BaseException:   # Ctrl-C or SIGTERM for us: the grader must not outlive us
            stop(proc)
            raise
    seconds = round(time.monotonic() - started, 1)
    output = read_tail(output_path)
    if timed_out:
        return Grading("timeout", None, output, seconds, None)
    results = None
    if code in (0, 1) and results_path.is_file():
        try:
            results = json.loads(results_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            results = None
    if results is None or not isinstance(results.get("tests"), list):
        return Grading("error", None, output, seconds, code)
    return Grading("graded", results, output, seconds, code)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the grader's group (it stops its programs), then SIGKILL."""
    if POSIX:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                proc.wait(KILL_GRACE)
                break
            except subprocess.TimeoutExpired:
                continue
    else:
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(KILL_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def read_tail(path: Path, limit: int = OUTPUT_LIMIT) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return ("[… the start of the grader's output was cut: it was too long]\n" + text
            if size > limit else text)


def score_table(output: str) -> str:
    """The score table at the end of the grader's output ('' if there is none)."""
    lines = output.rstrip().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].split()[:2] == ["stage", "points"]:
            for end in range(i + 1, len(lines)):
                if lines[end].split()[:1] == ["total"]:
                    return "\n".join(lines[i:end + 1])
    return ""


def zero_results(explanation: str, seconds: float = 0.0,
                 stages: list[str] | None = None) -> dict:
    """Gradescope's results.json for a submission that was not graded: 0 points of the
    maximum of `stages` (default: all; the grader's checks as declared), and why."""
    return {"score": 0, "max_score": catalog.maximum(stages),
            "execution_time": round(seconds, 1), "output": explanation,
            "visibility": "visible", "stdout_visibility": "hidden", "tests": []}


def timeout_explanation(timeout: float, output: str) -> str:
    last = [line for line in output.rstrip().splitlines() if line.strip()][-15:]
    text = ("Grading was stopped after %d s: it took longer than the time limit, so it "
            "scores 0. The grader bounds every check, so this usually means the machine "
            "was overloaded or a program kept it waiting on every check (a server that "
            "never answers, a client that never ends). Run `python -m pytest grader` on "
            "your own copy to see which checks take long." % timeout)
    if last:
        text += "\n\nThe grader's last lines:\n" + "\n".join("    " + line for line in last)
    return text


def error_explanation(grading: Grading) -> str:
    last = [line for line in grading.output.rstrip().splitlines() if line.strip()][-30:]
    return ("The grader could not grade this submission (it exited with status %s and "
            "wrote no results). Its last lines:\n%s"
            % (grading.exit_code, "\n".join("    " + line for line in last)))
