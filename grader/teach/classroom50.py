"""Classroom 50's autograder: `python -m grader classroom50 --out DIR --stage N`.

Classroom 50 (foundation50/classroom50) grades each submission with GitHub
Actions in the student's own repository: its runner fetches the assignment's
bundle, everything under `CLASSROOM/autograders/ASSIGNMENT/` of the course's
configuration repository, and runs its `autograder.py` with the bundle's Python,
in the student's checkout, with the submission's identity in the environment
(CLASSROOM, ASSIGNMENT, SUBMISSION_TAG, COMMIT_URL, RELEASE_URL, REVIEW_URL). The
autograder must write `./result.json` (schema `classroom50/result/v1`: score,
max-score, one entry per test) and exit 0; `./release-body.md`, the text of the
submission's Release, is optional. (Their wiki: "Advanced Autograding", § Writing
an autograder.py and § The result.json contract.)

DIR is that folder, ready to copy there:

    DIR/autograder.py        what the runner starts: runs the copy below
    DIR/chatkit/             the kit's grader at this version, pytest with it
                             (grader/teach/platforms.py), and chatkit.json: the
                             stages it grades and its time limit

The grading (`python -m grader classroom50 --run`, from DIR/chatkit) copies the
student's checkout (any layout `batch` accepts: a repository made from the
handout has its stage folders under stages/), grades it with the copy's grader,
never the student's own grader/, and always writes result.json and
release-body.md, whatever the student's programs do.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

from grader import catalog
from grader.stages import STAGES, stages_named
from grader.teach import platforms
from grader.teach.submissions import KIT

SCHEMA = "classroom50/result/v1"
DEFAULT_TIMEOUT = 300.0     # one grading; the runner's job stops at 15 minutes
CONFIG = "chatkit.json"
NAME_BYTES = 100            # a test's name, as their declarative tests bound it
OUTPUT_CHARS = 8000         # one check's text in result.json
BODY_CHARS = 60000          # the Release's text (GitHub takes 125,000)

AUTOGRADER = '''\
"""Classroom 50 runs this for every submission, in the student's checkout.

It grades the checkout with the chat kit's grader in chatkit/ next to this file
(never the student's own copy), and writes ./result.json and ./release-body.md.
Made by `python -m grader classroom50` (the chat kit, docs/teachers.md).
"""
import os
import subprocess
import sys
from pathlib import Path

KIT = Path(__file__).resolve().parent / "chatkit"
env = dict(os.environ, PYTHONPATH=os.pathsep.join(
    [str(KIT / "vendor"), str(KIT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
    PYTHONDONTWRITEBYTECODE="1")
checkout = os.getcwd()
done = subprocess.run([sys.executable, "-m", "grader", "classroom50", "--run", checkout],
                      cwd=KIT, env=env)
if not os.path.isfile(os.path.join(checkout, "result.json")):
    sys.exit("the chat kit's grader wrote no result.json (exit status %s)" % done.returncode)
'''


# --- building the folder --------------------------------------------------------------------

def build(out: Path, stages: list[str], timeout: float) -> int:
    """Write DIR; returns the number of files written."""
    files = {"chatkit/" + name: data for name, data in platforms.kit_files(["classroom50.py"]).items()}
    files.update({"chatkit/" + name: data for name, data in platforms.vendored().items()})
    files["chatkit/" + CONFIG] = (json.dumps({"stages": stages, "timeout": timeout},
                                             indent=2) + "\n").encode()
    files["autograder.py"] = AUTOGRADER.encode()
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    platforms.write_tree(partial, files)
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return len(files)


# --- grading one submission (inside the runner) ------------------------------------------------

def read_config() -> tuple[list[str], float]:
    try:
        config = json.loads((KIT / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    timeout = config.get("timeout", DEFAULT_TIMEOUT)
    return (platforms.stages_of(config),
            float(timeout) if isinstance(timeout, (int, float)) else DEFAULT_TIMEOUT)


def name_of(test: dict) -> str:
    """The check's name ('1.3 A message sent one byte at a time'), in at most 100 bytes."""
    name = re.sub(r"[\x00-\x1f\x7f]", " ", test.get("name", ""))
    while len(name.encode("utf-8")) > NAME_BYTES:
        name = name[:-1]
    return name


def result_json(graded: platforms.Graded, stages: list[str]) -> dict:
    """result.json: the submission's identity as the runner gives it, the grader's score
    and maximum, and one entry per check (its text kept as `output`)."""
    env = os.environ
    results = graded.results
    tests = [{"test-name": name_of(t), "passed": t.get("status") == "passed",
              "score": t["score"], "max-score": t["max_score"],
              "output": platforms.clip(t.get("output", ""), OUTPUT_CHARS)}
             for t in results.get("tests", [])]
    if not tests:   # not graded: one failed entry worth the whole, so the score is 0 of it
        tests = [{"test-name": "The submission could be graded", "passed": False, "score": 0,
                  "max-score": results.get("max_score") or catalog.maximum(stages or None),
                  "output": platforms.clip(graded.about, OUTPUT_CHARS)}]
    return {"schema": SCHEMA,
            "classroom": env.get("CLASSROOM", ""),
            "assignment": env.get("ASSIGNMENT", ""),
            "submission": env.get("SUBMISSION_TAG", ""),
            "commit": env.get("COMMIT_URL", ""),
            "release": env.get("RELEASE_URL", ""),
            "review": env.get("REVIEW_URL") or env.get("COMMIT_URL", ""),
            "datetime": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ"),
            "score": sum(t["score"] for t in tests),
            "max-score": sum(t["max-score"] for t in tests),
            "tests": tests}


def fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def release_body(graded: platforms.Graded, result: dict) -> str:
    """The Release's text: the score, what the grader said first, then each failed
    check's explanation (Expected, Got, Where, Hint), as the student's terminal shows it."""
    lines = ["## Chat kit: %s of %s points" % (result["score"], result["max-score"]), ""]
    about = graded.about.strip()
    lines += [fence(about), about, fence(about), ""]
    failed = [t for t in graded.results.get("tests", []) if t.get("status") != "passed"]
    for t in failed:
        text = platforms.clip(t.get("output", ""), OUTPUT_CHARS)
        lines += ["<details><summary>✗ %s (0 of %s)</summary>" % (
            re.sub(r"[<>&]", " ", name_of(t)), t["max_score"]), "", fence(text), text,
                  fence(text), "", "</details>", ""]
    body = "\n".join(lines)
    return platforms.clip(body, BODY_CHARS) + "\n"


def run(checkout: Path) -> int:
    """Grade `checkout`; write result.json and release-body.md there. Always 0."""
    started = time.monotonic()
    stages, timeout = read_config()

    def stopped(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stopped)
    try:
        graded = platforms.grade_folder(checkout, stages, timeout)
    except KeyboardInterrupt:
        message = ("The grading was stopped before it finished (the workflow was cancelled "
                   "or ran out of time), so it scores 0. Push again, or tell your teacher.")
        graded = platforms.Graded(platforms.zero_results(message, 0.0, stages or None),
                                  message, "", False)
    except BaseException:   # our own crash: the student still gets a result that says so
        message = ("The chat kit's grader itself failed while grading this submission. "
                   "This is not necessarily a problem with your code: tell your teacher.\n\n"
                   + traceback.format_exc())
        graded = platforms.Graded(platforms.zero_results(message, 0.0, stages or None),
                                  message, "", False)
    result = result_json(graded, stages)
    write(checkout / "result.json", json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    write(checkout / "release-body.md", release_body(graded, result))
    # The Actions log: the grader's whole output, then the score.
    print(graded.output)
    print("chat kit: %s of %s points (%.1f s)\n%s" % (result["score"], result["max-score"],
                                                     time.monotonic() - started, graded.about))
    return 0


def write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


# --- the command line ----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m grader classroom50",
        description="Write the folder to put at CLASSROOM/autograders/ASSIGNMENT/ in a "
                    "Classroom 50 course's configuration repository: autograder.py and the "
                    "chat kit's grader it runs.")
    parser.add_argument("--out", metavar="DIR", help="the folder to write (a new one)")
    parser.add_argument("--stage", action="append", default=[], metavar="N",
                        help="the stage this assignment grades (1-%d or a name); repeat for "
                             "several (default: all, whose later skeletons hold the earlier "
                             "answers)" % len(STAGES))
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="time limit for grading one submission (default %(default).0f; "
                             "the runner's job stops at 15 minutes)")
    parser.add_argument("--run", metavar="CHECKOUT", default=None,
                        help="grade the checkout (what autograder.py does)")
    args = parser.parse_args(argv)
    if args.run is not None:
        return run(Path(args.run).resolve())
    if not args.out:
        parser.error("--out DIR is required")
    if not 0 < args.timeout <= 840:
        parser.error("--timeout must be more than 0 and at most 840 s (the runner's job "
                     "stops at 15 minutes)")
    try:
        stages = stages_named(args.stage)
    except ValueError as error:
        parser.error(str(error))
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        parser.error("--out %s exists and is not an empty folder" % out)
    try:
        count = build(out, stages, args.timeout)
    except (OSError, LookupError) as error:
        print("python -m grader classroom50: %s" % error, file=sys.stderr)
        return 1
    print("Wrote %s (%d files): put its contents in your course's configuration "
          "repository at CLASSROOM/autograders/ASSIGNMENT/ (autograder.py at the top). "
          "It grades %s, at most %d s per submission."
          % (out, count, ", ".join(stages or STAGES), args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
