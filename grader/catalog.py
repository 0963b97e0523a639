"""The grader's checks as they are declared, without running anything.

Every check of every stage (grader/stages.py) read from the @check marks of
grader/test_*.py: its label ("2.3"), title, stage, points, what it needs. The
grader numbers and scores its checks from here, and so do the teachers' tools:
what a grading can give at most is known even when no grading finished (a class
where every grading ran out of time, a submission with nothing to grade), so
grades.csv, checks.csv and results.json always carry the maximum.

Numbers. A server check's number is the one it declares. Client checks
(grader/test_client.py) declare 20, 21, ...: they follow the stage's server
checks, from 20 on, or from the next ten past the stage's last server check when
a stage has server checks numbered 20 or more (then 20 becomes 30, 40, ...).

Points. A check earns its points in the stage that builds what it checks. A
check that runs in several stages (the client checks) earns them in the first
of its stages; in the later ones, like a check declared `kept=True`, it is kept:
it still runs and a failure still shows, as a regression of what an earlier
stage built, but it scores no points (docs/developing.md § Points).

`problems()` lists what is wrong with the declarations (two checks of a stage
with one number, a `needs=` that names no check of the stage or one that comes
later); the grader refuses to run while there is one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from grader.checks import ANSWERING, BASIC
from grader.stages import DECLARED, STAGES, label, order, stage_of_module

CLIENT_FIRST = 20   # the number the first client check declares


@dataclass(frozen=True)
class Declared:
    stage: str
    number: int        # within the stage, client checks shifted as the module says
    title: str
    points: int        # what it earns in this stage: 0 for a kept check
    declared_points: int
    kept: bool
    needs: str | None  # a test function's name, BASIC, ANSWERING or None
    tests: str         # "server" or "client"
    function: str
    fresh_server: bool

    @property
    def label(self) -> str:
        return label(self.stage, self.number)


def _marked(module) -> list[tuple[object, object, list[str]]]:
    """(function, its check mark, the stages it runs in) for each check of a module."""
    found = []
    own_stage = stage_of_module(module.__name__)
    for function in vars(module).values():
        marks = getattr(function, "pytestmark", [])
        mark = next((m for m in marks if m.name == "check"), None)
        if mark is None or not callable(function):
            continue
        stages = next((list(m.args[1]) for m in marks if m.name == "parametrize"
                       and m.args[0] == "stage"), [own_stage] if own_stage else [])
        found.append((function, mark, stages))
    return found


def _modules() -> list:
    return [importlib.import_module("grader." + path.stem)
            for path in sorted(Path(__file__).resolve().parent.glob("test_*.py"))]


def declared() -> list[Declared]:
    """Every check of every stage, in the grader's order (stage, then number)."""
    raw = []   # (stage, number as declared, mark, function, first stage of the function)
    for module in _modules():
        for function, mark, stages in _marked(module):
            ordered = sorted((s for s in stages if s in STAGES), key=order)
            for stage in ordered:
                raw.append((stage, mark, function, stage != ordered[0]))
    shift = {}
    for folder in STAGES:
        server = [m.kwargs["number"] for s, m, _, _ in raw
                  if s == folder and m.kwargs.get("tests", "server") == "server"]
        highest = max(server, default=0)
        shift[folder] = 0 if highest < CLIENT_FIRST else (highest // 10 + 1) * 10 - CLIENT_FIRST
    found = []
    for stage, mark, function, later in raw:
        kwargs = mark.kwargs
        tests = kwargs.get("tests", "server")
        number = kwargs["number"] + (shift[stage] if tests == "client" else 0)
        kept = bool(kwargs.get("kept", False)) or later
        points = kwargs.get("points", 1)
        found.append(Declared(stage, number, kwargs["title"], 0 if kept else points, points,
                              kept, kwargs.get("needs", BASIC), tests, function.__name__,
                              bool(kwargs.get("fresh_server", False))))
    found.sort(key=lambda c: (order(c.stage), c.number))
    return found


def problems(found: list[Declared] | None = None) -> list[str]:
    """What is wrong with the checks' declarations, one line each; [] when nothing is."""
    found = declared() if found is None else found
    lines = []
    for folder in STAGES:
        mine = [c for c in found if c.stage == folder]
        by_number = {}
        for check in mine:
            if check.number in by_number:
                lines.append("checks %s: %s and %s both have that number"
                             % (check.label, by_number[check.number].function, check.function))
            by_number[check.number] = check
        by_function = {c.function: c for c in mine}
        for check in mine:
            if check.needs in (None, BASIC, ANSWERING):
                continue
            needed = by_function.get(check.needs)
            if needed is None:
                lines.append("check %s (%s) needs %s, which is not a check of stage %s"
                             % (check.label, check.function, check.needs, folder))
            elif needed.number >= check.number:
                lines.append("check %s (%s) needs %s, which is check %s: a check can need "
                             "only a check that runs before it"
                             % (check.label, check.function, check.needs, needed.label))
    return lines


def checks(stages: list[str] | None = None) -> list[dict]:
    """Every check of `stages` (default: all), in the grader's order: dicts with
    number ("2.3"), title, stage and max_score (its points in that stage)."""
    stages = stages or list(STAGES)
    return [{"number": c.label, "title": c.title, "stage": c.stage, "max_score": c.points}
            for c in declared() if c.stage in stages]


def maximum(stages: list[str] | None = None) -> int:
    """The points of every check of `stages` together."""
    return sum(c["max_score"] for c in checks(stages))


def stage_maximum(stage: str) -> tuple[int, int]:
    """(points, checks) of one stage."""
    mine = checks([stage])
    return sum(c["max_score"] for c in mine), len(mine)


__all__ = ["Declared", "declared", "problems", "checks", "maximum", "stage_maximum", "DECLARED"]
