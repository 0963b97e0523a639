"""The grade as GitHub Classroom's grading reporter reads it: points check by check.

The reporter (classroom-resources/autograding-grading-reporter) reads, for each
runner named in its `runners:` input, the environment variable <RUNNER>_RESULTS:
the base64 of a JSON object with `max_score` and `tests`. It sends the gradebook
the sum of every test's `score` out of the sum of the `max_score`s, and marks the
run failed when a runner's `status` is "fail" or "error". The grader writes that
JSON itself (`pytest grader --classroom-results FILE`) and, inside a GitHub
Actions step, also gives it as the step's output `result`, so each grading step
of the workflow is one command and no script.

Results in, JSON out (no pytest, no sockets).
"""

from __future__ import annotations

import base64
import json
import os

from grader.isolation import write_out_of_reach
from grader.wire import OWN_ERROR, essentials


def classroom_results(results: dict) -> dict:
    """The grader's results (Gradescope's results.json format) as the reporter's JSON:
    every scored check with its own points, and for a failed one its Expected, Got
    and Hint. A check skipped on this system (max_score 0) is left out."""
    tests = [classroom_test(test) for test in results["tests"] if test["max_score"] > 0]
    passed = all(test["status"] == "pass" for test in tests)
    errored = any(test["status"] == "error" for test in tests)
    return {
        "version": 1,
        "status": "error" if errored else "pass" if passed else "fail",
        "max_score": sum(test["max_score"] for test in results["tests"]),
        "tests": tests,
    }


def classroom_test(test: dict) -> dict:
    output = test["output"]
    if test["status"] == "passed":
        status, message = "pass", ""
    else:
        status = "error" if output.startswith(OWN_ERROR) else "fail"
        message = "\n".join(essentials(output, limit=12))
    return {"name": test["name"], "status": status, "score": test["score"],
            "message": message, "line_no": 0, "test_code": ""}


def as_step_output(report: dict) -> str:
    """The line a GitHub Actions step appends to $GITHUB_OUTPUT: result=<base64 JSON>."""
    data = json.dumps(report, ensure_ascii=False).encode("utf-8")
    return "result=%s\n" % base64.b64encode(data).decode("ascii")


def write_classroom_results(path, report: dict) -> None:
    """Write the reporter's JSON to `path`; inside a GitHub Actions step (GITHUB_OUTPUT
    set), also append it to the step's outputs as `result`."""
    write_out_of_reach(path, json.dumps(report, indent=2, ensure_ascii=False))
    github_output = os.environ.get("GITHUB_OUTPUT")
    if github_output:
        with open(github_output, "a", encoding="utf-8") as outputs:
            outputs.write(as_step_output(report))
