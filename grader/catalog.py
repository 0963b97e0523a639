"""The grader's checks as it declares them, without running anything.

Each check's number, title, stage and points, read from the @check marks of
grader/test_*.py: what a grading can give at most, known even when no grading
finished (a class where every student's grading ran out of time, a submission
with nothing to grade), so that grades.csv, checks.csv and results.json always
carry the maximum. Names and numbers are those of results.json ("1.3").
"""

from __future__ import annotations

import importlib
from pathlib import Path

from grader.stages import STAGES


def checks(stages: list[str] | None = None) -> list[dict]:
    """Every check of `stages` (default: all), in the grader's order: dicts with
    number ("2.3"), title, stage and max_score (its points)."""
    stages = stages or list(STAGES)
    found = []
    for path in sorted(Path(__file__).resolve().parent.glob("test_*.py")):
        module = importlib.import_module("grader." + path.stem)
        for function in vars(module).values():
            marks = getattr(function, "pytestmark", [])
            check = next((m for m in marks if m.name == "check"), None)
            if check is None or not callable(function):
                continue
            for_stages = next((m.args[1] for m in marks if m.name == "parametrize"
                               and m.args[0] == "stage"), [getattr(module, "STAGE", None)])
            for stage in for_stages:
                if stage in stages:
                    number = check.kwargs["number"]
                    found.append({"number": "%s.%d" % (stage[0], number),
                                  "title": check.kwargs["title"], "stage": stage,
                                  "max_score": check.kwargs.get("points", 1),
                                  "order": (STAGES.index(stage), number)})
    found.sort(key=lambda c: c["order"])
    return [{k: v for k, v in c.items() if k != "order"} for c in found]


def maximum(stages: list[str] | None = None) -> int:
    """The points of every check of `stages` together."""
    return sum(c["max_score"] for c in checks(stages))
