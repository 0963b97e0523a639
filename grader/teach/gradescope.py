"""The Gradescope autograder: `python -m grader gradescope --out autograder.zip`.

The zip holds, at its root, what Gradescope asks for:

    setup.sh         run once when Gradescope builds the image: Python 3.10+ and
                     the two dependencies in /opt/chatkit-venv, and the
                     unprivileged user `student`
    run_autograder   run for every submission: grades $AUTOGRADER_ROOT/submission
                     (default root /autograder) and always writes
                     $AUTOGRADER_ROOT/results/results.json
    autograder.json  what this zip grades: the stages, the time limit

plus the kit files the grader needs (grader/, protocol.py, requirements.txt,
pyproject.toml, LICENSE); never solutions/ or tests/.

run_autograder calls `python -m grader gradescope --run-autograder`, which
copies the submission into a private folder (any layout the batch command
accepts: grader/teach/submissions.py), runs the grader on it with the students'
programs running as `student`, and writes results.json. An empty or
malformed submission, a grading that runs past the time limit, or a crash of
the grader itself still gives a results.json: 0 points and an explanation the
student can act on.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

from grader import isolation
from grader.stages import STAGES, stages_named
from grader.teach.submissions import (KIT, SubmissionProblem, error_explanation, grade,
                                      graders_files, prepare_named_within, score_table,
                                      timeout_explanation, zero_results)

DEFAULT_TIMEOUT = 300.0     # seconds for one grading; Gradescope's own limit is 10 minutes
OUTER_MARGIN = 60           # run_autograder's last-resort limit: the timeout plus this
STUDENT = "student"
VENV = "/opt/chatkit-venv"
# The teachers' tools the bundle runs: itself, and how a submission becomes a copy to grade.
TEACH_FILES = ["__init__.py", "gradescope.py", "submissions.py"]
KIT_FILES = ["protocol.py", "todo.py", "requirements.txt", "pyproject.toml", "LICENSE"]

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder's image
# (this zip is unpacked in /autograder/source). It installs Python 3.10 or newer
# and the grader's two dependencies, and creates the unprivileged user the
# students' programs run as.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SOURCE=/autograder/source

apt-get update
apt-get install -y python3 python3-venv python3-pip
PYTHON=python3
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    # An older image (Ubuntu 20.04 has Python 3.8): take 3.11 from the deadsnakes PPA.
    apt-get install -y software-properties-common
    add-apt-repository -y ppa:deadsnakes/ppa
    apt-get update
    apt-get install -y python3.11 python3.11-venv
    PYTHON=python3.11
fi

# A virtual environment outside /autograder (the student user may run it, not change
# it), so that pip never touches the system's own Python packages.
"$PYTHON" -m venv %(venv)s
%(venv)s/bin/python -m pip install -r "$SOURCE/requirements.txt"

# The students' programs run as this user: they can't read or change the grader's files.
id -u %(student)s >/dev/null 2>&1 || useradd --no-create-home --shell /usr/sbin/nologin %(student)s

chmod +x "$SOURCE/run_autograder"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission, as root. It grades
# $AUTOGRADER_ROOT/submission (default root /autograder) and always writes
# $AUTOGRADER_ROOT/results/results.json: see grader/teach/gradescope.py.
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
[ -d "$SOURCE/grader" ] || SOURCE="$(cd "$(dirname "$0")" && pwd)"
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
rm -f "$RESULTS"

PYTHON=%(venv)s/bin/python
[ -x "$PYTHON" ] || PYTHON=python3
# The grading stops itself at its own time limit; this outer one is the last resort.
LIMIT=""
command -v timeout >/dev/null 2>&1 && LIMIT="timeout --kill-after=10 %(outer)d"
(cd "$SOURCE" && $LIMIT "$PYTHON" -m grader gradescope --run-autograder)

# If even Python could not run, the student still gets a result that says so.
if [ ! -s "$RESULTS" ]; then
    cat > "$RESULTS" <<'EOF'
{"score": 0, "tests": [], "output": "The autograder itself failed before it could grade your submission. This is not a problem with your code: please tell your teacher, who can see what happened in the autograder's output."}
EOF
fi
exit 0
"""


# --- building the zip -----------------------------------------------------------------------

def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m grader gradescope",
        description="Write the zip to upload as a Gradescope autograder (setup.sh and "
                    "run_autograder at its root).")
    parser.add_argument("--out", metavar="ZIP", help="the zip to write, e.g. autograder.zip")
    parser.add_argument("--stage", action="append", default=[], metavar="N",
                        help="grade only this stage (its number or name), the stage of "
                             "this assignment; repeat for several (default: every stage)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="time limit for grading one submission (default %(default).0f; "
                             "Gradescope stops everything at 10 minutes)")
    parser.add_argument("--run-autograder", action="store_true",
                        help="grade the submission in $AUTOGRADER_ROOT (what run_autograder does)")
    args = parser.parse_args(argv)
    if not args.run_autograder:
        if not args.out:
            parser.error("--out ZIP is required")
        if not args.out.lower().endswith(".zip"):
            parser.error("--out %s: the name must end in .zip" % args.out)
        if not 0 < args.timeout <= 540:
            parser.error("--timeout must be more than 0 and at most 540 s (Gradescope "
                         "stops the autograder at 10 minutes)")
    try:
        args.stages = stages_named(args.stage)
    except ValueError as error:
        parser.error(str(error))
    return args


def add_file(zf: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.create_system = 3   # Unix, so that the permission bits below count
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def build(out: Path, stages: list[str], timeout: float) -> list[str]:
    """Write the autograder zip; returns the names in it."""
    config = {"stages": stages, "timeout": timeout}
    files = [("setup.sh", (SETUP_SH % {"venv": VENV, "student": STUDENT}).encode(), True),
             ("run_autograder", (RUN_AUTOGRADER % {"venv": VENV, "outer": timeout + OUTER_MARGIN}
                                 ).encode(), True),
             ("autograder.json", (json.dumps(config, indent=2) + "\n").encode(), False)]
    for path in graders_files() + [KIT / "grader" / "teach" / name for name in TEACH_FILES]:
        files.append((path.relative_to(KIT).as_posix(), path.read_bytes(), False))
    for name in KIT_FILES:
        if (KIT / name).is_file():
            files.append((name, (KIT / name).read_bytes(), False))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w") as zf:
        for name, data, executable in files:
            add_file(zf, name, data, executable)
    os.replace(partial, out)
    return [name for name, _, _ in files]


# --- grading one submission (inside Gradescope) -----------------------------------------------

def who_runs_programs() -> tuple[str | None, str]:
    """(the --run-as user or None, a sentence for the output saying who runs the programs)."""
    try:
        import pwd
        pwd.getpwnam(STUDENT)
        exists = True
    except (ImportError, KeyError):
        exists = False
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if isolation.possible():
        return None, ("Your programs ran as a user of their own, which no other program on "
                      "this machine had.")
    if exists and is_root:
        return STUDENT, "Your programs ran as the unprivileged user %s." % STUDENT
    try:
        import getpass
        me = getpass.getuser()
    except Exception:
        me = "the grader's own user"
    why = ("there is no user %s here" % STUDENT if not exists
           else "the grader is not running as root")
    return None, "Your programs ran as %s (%s, so not as %s)." % (me, why, STUDENT)


def read_config(source: Path) -> tuple[list[str], float]:
    try:
        config = json.loads((source / "autograder.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    stages = [s for s in config.get("stages", []) if s in STAGES]
    timeout = config.get("timeout", DEFAULT_TIMEOUT)
    return stages, float(timeout) if isinstance(timeout, (int, float)) else DEFAULT_TIMEOUT


def grade_submission(root: Path, started: float) -> tuple[dict, str]:
    """Grade $root/submission: (results.json's content, the grader's output for the log)."""
    stages, timeout = read_config(KIT)
    run_as, who = who_runs_programs()
    submission = root / "submission"
    try:
        prepared = prepare_named_within(submission, stages or None,
                                        readable=bool(run_as))
    except SubmissionProblem as problem:
        return zero_results(problem.message, time.monotonic() - started, stages or None), ""
    try:
        with tempfile.TemporaryDirectory(prefix="chatkit-gradescope-") as work:
            grading = grade(prepared.impl, stages, timeout, Path(work), run_as=run_as)
    finally:
        prepared.cleanup()
    grading = prepared.as_given(grading)   # what was submitted, not our private copy
    seconds = time.monotonic() - started
    about = prepared.describe() + "\n" + who
    if grading.status == "graded":
        results = dict(grading.results)
        table = score_table(grading.output)
        results["output"] = about + ("\n\n" + table if table else "")
        results["execution_time"] = round(seconds, 1)
        results.setdefault("stdout_visibility", "hidden")
        return results, grading.output
    reason = (timeout_explanation(timeout, grading.output) if grading.status == "timeout"
              else error_explanation(grading))
    return zero_results(about + "\n\n" + reason, seconds, stages or None), grading.output


def stopped_from_outside(signum, frame):
    """SIGTERM (run_autograder's last-resort time limit): end like Ctrl-C, which stops
    the grading and still writes results.json."""
    raise KeyboardInterrupt


def run_autograder() -> int:
    started = time.monotonic()
    root = Path(os.environ.get("AUTOGRADER_ROOT", "/autograder"))
    results_path = root / "results" / "results.json"
    output = ""
    signal.signal(signal.SIGTERM, stopped_from_outside)
    try:
        results, output = grade_submission(root, started)
    except KeyboardInterrupt:
        results = zero_results(
            "The autograder was stopped before it finished grading your submission (it "
            "ran past its time limit), so it scores 0. Run `python -m pytest grader` on "
            "your own copy to see which checks take long, or tell your teacher.",
            time.monotonic() - started, read_config(KIT)[0] or None)
    except BaseException:   # our own crash: the student still gets a result
        results = zero_results(
            "The autograder itself failed while grading your submission. This is not "
            "necessarily a problem with your code: please tell your teacher.\n\n"
            + traceback.format_exc(), time.monotonic() - started, read_config(KIT)[0] or None)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os.chmod(results_path.parent, 0o700)   # only root (Gradescope) reads the results
    partial = results_path.with_name("results.json.partial")
    partial.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(partial, results_path)
    # Gradescope shows this to the teacher (not to the student, unless set so).
    print(output)
    print("results.json: %s of %s points\n%s" % (results.get("score"), results.get("max_score", "?"),
                                                results.get("output", "")))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.run_autograder:
        return run_autograder()
    out = Path(args.out)
    if out.is_dir():
        print("python -m grader gradescope: --out %s is a folder; give a .zip file name"
              % out, file=sys.stderr)
        return 2
    try:
        names = build(out, args.stages, args.timeout)
    except OSError as error:
        print("python -m grader gradescope: %s" % error, file=sys.stderr)
        return 1
    print("Wrote %s (%d files): upload it as the autograder of a Gradescope programming "
          "assignment. It grades %s, at most %d s per submission."
          % (out, len(names), ", ".join(args.stages or STAGES), args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
