"""A class's gradings as rows, one per student, and the checks seen across them.

What grades.csv, checks.csv, the summary (batch.py) and report.html (batch_page.py)
all read: each student's results.json, as the grader wrote it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from grader import catalog
from grader.stages import STAGES


@dataclass
class Row:
    """Everything about one student: their row in grades.csv and their checks."""
    student: str
    folder: str
    status: str
    seconds: float = 0.0
    results: dict | None = None
    reason: str = ""           # why not graded (status other than "graded")
    reused: bool = False

    def tests(self) -> list[dict]:
        return (self.results or {}).get("tests", []) if self.status == "graded" else []

    def stage_points(self, stage: str) -> tuple[int, int]:
        tests = [t for t in self.tests() if stage in t.get("tags", [])]
        return sum(t["score"] for t in tests), sum(t["max_score"] for t in tests)

    @property
    def total(self) -> int:
        return (self.results or {}).get("score", 0) if self.status == "graded" else 0

    @property
    def max_score(self):
        return (self.results or {}).get("max_score", "") if self.status == "graded" else ""


def describe_row(row: Row) -> str:
    if row.status == "graded":
        return "%s/%s" % (row.total, row.max_score)
    return row.status


def class_max(rows: list[Row], stages: list[str] | None = None):
    """The maximum most graded students had; with none graded, the grader's checks of
    `stages` as declared (grader/catalog.py): a row always carries its maximum."""
    maxima = Counter(r.max_score for r in rows if r.status == "graded")
    return maxima.most_common(1)[0][0] if maxima else catalog.maximum(stages)


def all_checks(rows: list[Row], stages: list[str] | None = None) -> list[dict]:
    """Every check seen in any graded row, in the grader's order: number, title, stage, max.
    With `stages`, also the grader's checks of those stages as declared (grader/catalog.py),
    so that the list is whole even when no grading finished; as graded prevails."""
    seen: dict[str, dict] = {}
    for row in rows:
        for t in row.tests():
            seen.setdefault(t["number"], {
                "number": t["number"], "title": title_of(t), "stage": stage_of(t),
                "max_score": t["max_score"]})
    for check in catalog.checks(stages) if stages else []:
        seen.setdefault(check["number"], dict(check))
    return sorted(seen.values(), key=check_order)


def check_order(check: dict):
    stage = check["stage"]
    number = check["number"].split(".")[-1]
    return (STAGES.index(stage) if stage in STAGES else len(STAGES),
            int(number) if number.isdigit() else 0, check["number"])


def title_of(test: dict) -> str:
    name = test.get("name", "")
    prefix = test.get("number", "") + " "
    return name[len(prefix):] if name.startswith(prefix) else name


def stage_of(test: dict) -> str:
    tags = test.get("tags") or [""]
    return tags[0]


def failure_counts(rows: list[Row]) -> Counter:
    return Counter(t["number"] for r in rows for t in r.tests() if t["status"] != "passed")
