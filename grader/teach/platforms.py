"""What the platforms' autograders share: the kit's grader as files to ship, the two
libraries it needs, and one submission graded into the grader's own results.

Classroom 50 (grader/teach/classroom50.py) and PrairieLearn
(grader/teach/prairielearn.py) each run a copy of the grader that the teacher puts
where students cannot change it (the course's configuration repository, the
course's serverFilesCourse). Neither platform installs pytest for it (PrairieLearn
grades with no network at all), so the copy carries its own: pytest, pytest-timeout
and what they need, as installed where the copy is made ("vendor/", on PYTHONPATH
when it runs). Any Python 3.10 or newer can then run it as it comes.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from grader.stages import STAGES
from grader.system import OS_NAME, PLATFORM
from grader.teach.submissions import (KIT, SubmissionProblem, error_explanation, grade,
                                      graders_files, prepare_named_within, score_table,
                                      timeout_explanation, zero_results)

KIT_FILES = ["requirements.txt", "pyproject.toml", "LICENSE"]   # and the kit's own modules
VENDOR = "vendor"
NEEDED = ["pytest", "pytest-timeout"]      # requirements.txt's, and what they need


# --- the copy of the grader ---------------------------------------------------------------

def kit_files(tools: list[str]) -> dict[str, bytes]:
    """The grader (grader/, its start-up hook, the teachers' `tools` of grader/teach/) and
    the kit's files it reads (the modules at the kit's top, protocol.py among them):
    path in the copy -> contents. Never solutions/ or tests/."""
    paths = graders_files() + [KIT / "grader" / "teach" / name
                               for name in ["__init__.py", "submissions.py", "platforms.py", *tools]]
    files = {p.relative_to(KIT).as_posix(): p.read_bytes() for p in paths}
    tops = sorted(p.name for p in KIT.glob("*.py")) + KIT_FILES   # protocol.py, ...
    files.update({name: (KIT / name).read_bytes() for name in tops if (KIT / name).is_file()})
    return files


def requirement_names(requires: list[str] | None) -> list[str]:
    """The distributions a distribution needs on this Python, extras left out
    (`pluggy<2,>=1.5` -> pluggy; `tomli>=1; python_version < "3.11"` only below 3.11)."""
    names = []
    for line in requires or []:
        spec, _, marker = line.partition(";")
        if marker and not evaluate(marker.strip()):
            continue
        names.append(re.match(r"[A-Za-z0-9._-]+", spec.strip()).group(0))
    return names


def evaluate(marker: str) -> bool:
    """The environment markers pytest's requirements use, read for this Python: `extra`,
    `sys_platform` and `python_version` comparisons, joined by `and`."""
    import platform
    import sys
    values = {"extra": "", "sys_platform": PLATFORM, "platform_system": platform.system(),
              "os_name": OS_NAME,
              "python_version": "%d.%d" % sys.version_info[:2]}
    for clause in re.split(r"\s+and\s+", marker):
        found = re.fullmatch(r"""\s*(\w+)\s*(==|!=|<=|>=|<|>)\s*["']([^"']*)["']\s*""", clause)
        if not found or found.group(1) not in values:
            return False          # a marker we cannot read: not needed here
        name, op, wanted = found.groups()
        have = values[name]
        if name == "python_version":
            have, wanted = (tuple(map(int, v.split("."))) for v in (have, wanted))
        if not {"==": have == wanted, "!=": have != wanted, "<": have < wanted,
                "<=": have <= wanted, ">": have > wanted, ">=": have >= wanted}[op]:
            return False
    return True


def vendored() -> dict[str, bytes]:
    """pytest, pytest-timeout and every distribution they need, as installed here: their
    files under vendor/ (path in the copy -> contents). Raises LookupError naming a
    distribution that is not installed."""
    files: dict[str, bytes] = {}
    seen: set[str] = set()
    todo = list(NEEDED)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise LookupError("%s is not installed here (python -m pip install -r "
                              "requirements.txt)" % name) from None
        root = Path(dist.locate_file("")).resolve()
        for entry in dist.files or []:
            path = Path(dist.locate_file(entry)).resolve()
            if not path.is_relative_to(root) or "__pycache__" in path.parts \
                    or path.suffix == ".pyc" or not path.is_file():
                continue   # its commands in bin/, compiled caches
            files["%s/%s" % (VENDOR, path.relative_to(root).as_posix())] = path.read_bytes()
        todo += requirement_names(dist.requires)
    return files


def write_tree(out: Path, files: dict[str, bytes], executable: set[str] = frozenset()) -> None:
    for name, data in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chmod(path, 0o755 if name in executable else 0o644)


# --- one submission, graded -------------------------------------------------------------------

@dataclass
class Graded:
    """One submission graded: the grader's results (Gradescope's results.json: score,
    max_score, tests with number, name, score, max_score, status, output, tags), what
    the student reads first (`about`), and the grader's whole output for the log."""
    results: dict
    about: str
    output: str
    gradable: bool          # False: nothing to grade (empty, no stage folder): 0, and why


def grade_folder(folder: Path, stages: list[str], timeout: float) -> Graded:
    """Grade the submission in `folder` (any layout `batch` accepts) on `stages`, within
    `timeout` seconds. The student's files are named as they are in `folder`
    (`stages/1_echo/chat_server.py`); whatever happens, a result comes back."""
    started = time.monotonic()
    try:
        prepared = prepare_named_within(folder, stages or None)
    except SubmissionProblem as problem:
        return Graded(zero_results(problem.message, time.monotonic() - started, stages or None),
                      problem.message, "", False)
    try:
        with tempfile.TemporaryDirectory(prefix="chatkit-platform-") as work:
            grading = grade(prepared.impl, stages, timeout, Path(work))
    finally:
        prepared.cleanup()
    grading = prepared.as_given(grading)
    seconds = time.monotonic() - started
    about = prepared.describe()
    if grading.status == "graded":
        results = dict(grading.results, execution_time=round(seconds, 1))
        table = score_table(grading.output)
        return Graded(results, about + ("\n\n" + table if table else ""), grading.output, True)
    reason = (timeout_explanation(timeout, grading.output) if grading.status == "timeout"
              else error_explanation(grading))
    return Graded(zero_results(about + "\n\n" + reason, seconds, stages or None),
                  about + "\n\n" + reason, grading.output, grading.status == "timeout")


def stages_of(config: dict) -> list[str]:
    return [s for s in config.get("stages", []) if s in STAGES]


def clip(text: str, limit: int) -> str:
    """`text` at most `limit` characters: its start, and its end, which tells most."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "\n[… %d characters cut …]\n" % (len(text) - 2 * half) + text[-half:]
