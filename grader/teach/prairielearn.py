"""PrairieLearn's external grading: `python -m grader prairielearn --out DIR --stage N`.

PrairieLearn grades an externally graded question in a container (its
docs/externalGrading.md): it starts the question's `image`, puts the course's
`serverFilesCourse` files the question names under /grade/serverFilesCourse and
the student's files under /grade/student, runs the `entrypoint`, stops the
container at the question's `timeout` (at most 600 s), and reads
/grade/results/results.json: `score` from 0 to 1, and `tests` (name, points,
max_points, output, message) that its <pl-external-grader-results> element
shows; `gradable: false` with `format_errors` marks a submission that could not
be graded (no attempt lost). The container has no network unless the question
enables it.

DIR holds what a course adds, laid out as the course's own folders:

    DIR/serverFilesCourse/chatkit/        the kit's grader at this version, with pytest
                                          (grader/teach/platforms.py), and run.sh, the
                                          entrypoint
    DIR/questions/chatkit/<stage>/        one question per stage: info.json (external
                                          grading: image, entrypoint, serverFilesCourse,
                                          timeout) and question.html (upload
                                          chat_server.py and chat_client.py)

run.sh grades /grade/student (the two files, or any layout `batch` accepts) on
the stages its question names, and always writes /grade/results/results.json.
It finds /grade from its own place (two folders up), so a copy of the same tree
anywhere grades the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
import traceback
import uuid
from pathlib import Path

from grader.stages import STAGES, stages_named
from grader.teach import platforms

IMAGE = "python:3.12-slim"      # a standard public image: Python, nothing else needed
DEFAULT_TIMEOUT = 120.0         # one grading; the container's timeout is this plus MARGIN
MARGIN = 30                     # seconds for the container to start and the copy to load
MOST = 600                      # PrairieLearn's most for a question's timeout
OUTPUT_CHARS = 8000             # one check's text in results.json
MESSAGE_CHARS = 20000
RESULTS_BYTES = 1_000_000       # PrairieLearn reads at most 1 MB of results.json

RUN_SH = """\
#!/bin/sh
# PrairieLearn's entrypoint for the chat kit's questions (made by `python -m grader
# prairielearn`). It grades /grade/student on the stages given as arguments with the
# grader next to this file, and always writes /grade/results/results.json.
HERE="$(cd "$(dirname "$0")" && pwd)"
GRADE="$(dirname "$(dirname "$HERE")")"          # /grade: this is GRADE/serverFilesCourse/chatkit
mkdir -p "$GRADE/results"
PYTHON="$(command -v python3 || command -v python)"
export PYTHONPATH="$HERE/vendor:$HERE" PYTHONDONTWRITEBYTECODE=1
(cd "$HERE" && "$PYTHON" -m grader prairielearn --run "$GRADE" "$@")
if [ ! -s "$GRADE/results/results.json" ]; then
    cat > "$GRADE/results/results.json" <<'EOF'
{"gradable": false, "score": 0, "format_errors": ["The chat kit's grader could not run (no Python 3.10 or newer in the grading image?). This is not a problem with your code: tell your teacher."]}
EOF
fi
exit 0
"""

QUESTION_HTML = """\
<pl-question-panel>
  <p>
    Stage <code>%(stage)s</code> of the chat kit: upload your
    <code>chat_server.py</code> and <code>chat_client.py</code> of
    <code>stages/%(stage)s/</code>, and any module of yours they import from that
    folder. The chat kit's grader starts them, talks to them over real sockets and
    shows every check: what it sent, what came back, what it expected, and a hint.
  </p>
  <pl-file-upload file-names="chat_server.py, chat_client.py"
                  optional-file-patterns="*.py"></pl-file-upload>
</pl-question-panel>

<pl-submission-panel>
  <pl-external-grader-results></pl-external-grader-results>
  <pl-file-preview></pl-file-preview>
</pl-submission-panel>
"""


# --- building the folders ------------------------------------------------------------------------

def info_json(stages: list[str], timeout: float, image: str) -> dict:
    name = ", ".join(stages)
    return {
        "uuid": str(uuid.uuid4()),
        "title": "Chat kit: %s" % name,
        "topic": "Socket programming",
        "tags": ["chatkit"],
        "type": "v3",
        "singleVariant": True,
        "gradingMethod": "External",
        "externalGradingOptions": {
            "enabled": True,
            "image": image,
            "serverFilesCourse": ["chatkit/"],
            "entrypoint": ["/grade/serverFilesCourse/chatkit/run.sh", *stages,
                           "--timeout", "%g" % timeout],
            "timeout": int(min(MOST, timeout + MARGIN)),
        },
    }


def build(out: Path, stages: list[str], timeout: float, image: str) -> list[str]:
    """Write DIR (see the module's doc); returns the questions' folders, relative to DIR."""
    files = {"serverFilesCourse/chatkit/" + name: data for name, data in
             platforms.kit_files(["prairielearn.py"]).items()}
    files.update({"serverFilesCourse/chatkit/" + name: data
                  for name, data in platforms.vendored().items()})
    files["serverFilesCourse/chatkit/run.sh"] = RUN_SH.encode()
    questions = []
    for graded in ([[s] for s in stages] if stages else [list(STAGES)]):
        folder = "questions/chatkit/%s" % ("-".join(graded) if stages else "all")
        files[folder + "/info.json"] = (json.dumps(info_json(graded, timeout, image), indent=2)
                                        + "\n").encode()
        files[folder + "/question.html"] = (QUESTION_HTML % {"stage": graded[-1]}).encode()
        questions.append(folder)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    platforms.write_tree(partial, files, executable={"serverFilesCourse/chatkit/run.sh"})
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return questions


# --- grading one submission (inside the container) -------------------------------------------------

def results_json(graded: platforms.Graded) -> dict:
    """PrairieLearn's results.json: score as a fraction of the grader's maximum, each
    check as a test with its points, its text as output."""
    results = graded.results
    if not graded.gradable:
        return {"gradable": False, "score": 0,
                "format_errors": [platforms.clip(graded.about, MESSAGE_CHARS)],
                "message": platforms.clip(graded.about, MESSAGE_CHARS)}
    tests = [{"name": t.get("name", ""), "description": "%s, %s" % (
                  (t.get("tags") or [""])[0], t.get("status", "")),
              "points": t["score"], "max_points": t["max_score"],
              "message": "" if t.get("status") == "passed" else "Failed: the output says why.",
              "output": platforms.clip(t.get("output", ""), OUTPUT_CHARS)}
             for t in results.get("tests", [])]
    points = sum(t["points"] for t in tests)
    maximum = sum(t["max_points"] for t in tests) or results.get("max_score") or 1
    return {"gradable": True, "score": points / maximum if tests else 0,
            "message": platforms.clip(graded.about, MESSAGE_CHARS),
            "output": platforms.clip(graded.output, MESSAGE_CHARS), "tests": tests}


def fitted(results: dict) -> str:
    """results.json's text within PrairieLearn's 1 MB: the checks' texts cut shorter
    until it fits (the score and points never change)."""
    limit = OUTPUT_CHARS
    while True:
        text = json.dumps(results, ensure_ascii=False)
        if len(text.encode("utf-8")) <= RESULTS_BYTES or limit < 200:
            return text
        limit //= 2
        for test in results.get("tests", []):
            test["output"] = platforms.clip(test["output"], limit)
        results["output"] = platforms.clip(results.get("output", ""), limit)


def run(grade_root: Path, stages: list[str], timeout: float) -> int:
    """Grade grade_root/student; write grade_root/results/results.json. Always 0."""
    started = time.monotonic()

    def stopped(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stopped)
    try:
        graded = platforms.grade_folder(grade_root / "student", stages, timeout)
    except KeyboardInterrupt:
        graded = platforms.Graded({}, "The grading was stopped before it finished. "
                                      "Submit again, or tell your teacher.", "", False)
    except BaseException:   # our own crash: not gradable, so no attempt is lost
        graded = platforms.Graded({}, "The chat kit's grader itself failed while grading "
                                      "this submission: tell your teacher.\n\n"
                                  + traceback.format_exc(), "", False)
    results = results_json(graded)
    results_dir = grade_root / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    partial = results_dir / "results.json.partial"
    partial.write_text(fitted(results), encoding="utf-8")
    os.replace(partial, results_dir / "results.json")
    print(graded.output)
    print("chat kit: score %.4f (%.1f s)\n%s" % (results["score"], time.monotonic() - started,
                                                 graded.about))
    return 0


# --- the command line ----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m grader prairielearn",
        description="Write what a PrairieLearn course adds to grade the chat kit: "
                    "serverFilesCourse/chatkit/ (the grader and its entrypoint) and one "
                    "question per stage under questions/chatkit/.")
    parser.add_argument("--out", metavar="DIR", help="the folder to write (a new one)")
    parser.add_argument("--stage", action="append", default=[], metavar="N",
                        help="a stage to write a question for (1-%d or a name); repeat for "
                             "several (default: one question grading them all)" % len(STAGES))
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="time limit for grading one submission (default %%(default).0f; "
                             "the question's timeout is %d s more, at most %d)" % (MARGIN, MOST))
    parser.add_argument("--image", default=IMAGE,
                        help="the grading image: any with Python 3.10 or newer (default "
                             "%(default)s)")
    parser.add_argument("--run", metavar="GRADE", default=None,
                        help="grade GRADE/student (what run.sh does)")
    parser.add_argument("stages", nargs="*", help=argparse.SUPPRESS)   # run.sh's arguments
    args = parser.parse_args(argv)
    try:
        stages = stages_named(args.stage + args.stages)
    except ValueError as error:
        parser.error(str(error))
    if args.run is not None:
        return run(Path(args.run).resolve(), stages, args.timeout)
    if args.stages:
        parser.error("unexpected arguments: %s" % " ".join(args.stages))
    if not args.out:
        parser.error("--out DIR is required")
    if not 0 < args.timeout <= MOST - MARGIN:
        parser.error("--timeout must be more than 0 and at most %d s (PrairieLearn stops a "
                     "grading at %d s)" % (MOST - MARGIN, MOST))
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        parser.error("--out %s exists and is not an empty folder" % out)
    try:
        questions = build(out, stages, args.timeout, args.image)
    except (OSError, LookupError) as error:
        print("python -m grader prairielearn: %s" % error, file=sys.stderr)
        return 1
    print("Wrote %s: copy serverFilesCourse/chatkit/ and %s into your course's "
          "repository (the same paths). Each question grades its stage in %s, at most %d s "
          "per submission." % (out, ", ".join(q + "/" for q in questions), args.image,
                               args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
