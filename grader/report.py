"""What a grading reports: the score table and the lines below it, and results.json.

Read from the Grader (grading.py) once the checks have run: the table a student
reads at the end of pytest's output, and the files a platform reads (Gradescope's
results.json, GitHub Classroom's result). Nothing here decides a score.
"""

from __future__ import annotations

import json
import time

from grader.classroom import classroom_results, write_classroom_results
from grader.isolation import write_out_of_reach
from grader.stages import order
from grader.wire import OWN_ERROR, essentials

KEPT = ("\n(Kept from an earlier stage: this check scores no points here, its own stage "
        "gave them; a failure means a change broke what worked before.)")
NOT_THE_STUDENTS = ("Blocked by", OWN_ERROR)   # failures that are not the first thing to fix


def scored(grader, stage: str) -> list:
    """The stage's checks that count: a skipped one neither earns nor costs points."""
    return [c for c in grader.checks.values() if c.stage == stage and c.status != "skipped"]


def say_watchdog_troubles(grader, tr) -> None:
    """The watchdog's own errors (watchdog.py keeps them), under the total: while one
    lasts, the limits on memory, processes and files may not hold, which a teacher
    grading untrusted code must know; its traceback is on the grader's standard error."""
    troubles = getattr(getattr(grader.sandbox, "watchdog", None), "troubles", None) or []
    for trouble in troubles:
        tr.write_line("WARNING: the grader's watchdog hit an error of its own (%s): the "
                      "limits on memory, processes and files may not have held." % trouble,
                      bold=True)


def score_table(grader, tr) -> None:
    """The score table, written with pytest's terminal reporter `tr`: each stage's checks
    with their marks and points, the stages' points and the total; then which stage the
    student is on, the regressions, and the first failure to fix."""
    if not grader.checks:
        return
    tr.section("chat kit: %s" % grader.impl)
    if grader.who:
        tr.write_line("(%s)" % grader.who if not grader.who.startswith("WARNING")
                      else grader.who, bold=grader.who.startswith("WARNING"))
    total = maximum = 0
    rows = []
    width = max(len(c.title) for c in grader.checks.values())
    for stage in grader.stages:
        checks = sorted((c for c in grader.checks.values() if c.stage == stage),
                        key=lambda c: c.number)
        if not checks:
            continue
        tr.write_line(stage)
        if stage in grader.not_started:   # nothing of it ran: one line, not a list of zeros
            tr.write_line("  · not started: its %d checks are not run (`python -m grader "
                          "next` starts it)" % len(checks))
            checks = []
        for c in checks:
            mark = {"passed": "✓", "failed": "✗", "skipped": "-"}.get(c.status, "·")
            earned = c.points if c.status == "passed" else 0
            score = ("kept" if c.status != "failed" else "REGRESSION") if c.kept \
                else "%d/%d" % (earned, c.points)
            tr.write_line("  %s %-5s %-*s %s" % (mark, c.label, width, c.title, score))
        got = sum(c.points for c in scored(grader, stage) if c.status == "passed")
        out_of = sum(c.points for c in scored(grader, stage))
        rows.append((stage, got, out_of))
        total, maximum = total + got, maximum + out_of
    if any(c.status == "not run" for c in grader.checks.values()):
        tr.write_line("(· = not run: the run stopped early, e.g. with -x or Ctrl-C; scores 0)")
    tr.write_line("")
    tr.write_line("%-14s %s" % ("stage", "points"))
    for stage, got, out_of in rows:
        tr.write_line("%-14s %3d / %d" % (stage, got, out_of))
    tr.write_line("%-14s %3d / %d" % ("total", total, maximum), bold=True)
    say_watchdog_troubles(grader, tr)
    say_which_stage(grader, tr)
    regressions = [c.label for c in grader.checks.values() if c.kept and c.status == "failed"
                   and c.stage not in grader.not_started]
    if regressions:
        tr.write_line("REGRESSION: %s, %s what an earlier stage built, %s: no points "
                      "lost here, but fix %s first." % (
                          ", ".join(sorted(regressions, key=lambda n: tuple(
                              int(p) for p in n.split(".")))),
                          "a check of" if len(regressions) == 1 else "checks of",
                          "fails" if len(regressions) == 1 else "fail",
                          "it" if len(regressions) == 1 else "them"), bold=True)
    recall_first_failure(grader, tr)


def say_which_stage(grader, tr) -> None:
    """With a stage not started, the stage the student is on: the last one started."""
    if not grader.not_started:
        return
    started = [stage for stage in grader.stages if stage not in grader.not_started
               and (grader.impl / stage).is_dir()]
    waiting = [stage for stage in grader.stages if stage in grader.not_started]
    if started:
        tr.write_line("You are on stage %s. Not started yet: %s (`python -m grader next` "
                      "starts the next one from your %s)."
                      % (started[-1], ", ".join(waiting), started[-1]))


def recall_first_failure(grader, tr) -> None:
    """Below the table, the essentials of the first failed check (what was expected,
    what came, the hint), so a student's last screen holds both."""
    failed = [c for c in sorted(grader.checks.values(), key=lambda c: (order(c.stage), c.number))
              if c.status == "failed" and not c.output.startswith(NOT_THE_STUDENTS)
              and c.stage not in grader.not_started]   # the line above the table says
    if not failed:
        return
    first = failed[0]
    tr.write_line("")
    tr.write_line("Fix first: %s %s (its whole story is above)" % (first.label, first.title),
                  bold=True)
    for line in essentials(first.output):
        tr.write_line("  " + line)
    todo = next((line for line in first.output.splitlines() if "not implemented yet" in line
                 and line.lstrip(" |").startswith("TODO")), None)
    if todo:
        tr.write_line("  " + todo.lstrip(" |"))


def write_results(grader) -> None:
    """results.json (--results) and GitHub Classroom's result (--classroom-results)."""
    if grader.results_path:
        write_out_of_reach(grader.results_path,
                           json.dumps(results(grader), indent=2, ensure_ascii=False))
    if grader.classroom_path:
        write_classroom_results(grader.classroom_path, classroom_results(results(grader)))


def results(grader) -> dict:
    """The run in Gradescope's results.json format."""
    checks = sorted(grader.checks.values(), key=lambda c: (order(c.stage), c.number))
    tests = [{
        "name": "%s %s" % (c.label, c.title),
        "number": c.label,
        "score": c.points if c.status == "passed" else 0,
        "max_score": 0 if c.status == "skipped" else c.points,
        "status": "passed" if c.status == "passed" else "failed",
        "output": (c.output or "Not run.") + (KEPT if c.kept else ""),
        "tags": [c.stage],
        "visibility": "visible",
    } for c in checks]
    return {
        "score": sum(t["score"] for t in tests),
        "max_score": sum(t["max_score"] for t in tests),
        "execution_time": round(time.time() - grader.started, 2),
        "visibility": "visible",
        "tests": tests,
    }
