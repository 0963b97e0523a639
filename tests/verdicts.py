"""The verdicts of every planted fault, stored once: which checks each one fails.

tests/verdicts.json holds, for each of the kit's tests that grades planted faults
(test_mutants.py: each faulty switch on its first stage; test_todos.py: each
one-TODO-left program; test_proportional.py: one mistake on all four stages),
the checks each fault failed when the file was written. Those tests compare what
they see with it, using the gradings they run anyway (nothing is graded for
this alone): a change to the grader (faster, say) must leave every verdict as
it was, down to the last check.

When a check changes on purpose (a new check, a check that now catches more),
record the new verdicts, look at the diff of tests/verdicts.json, and commit it
with the change:

    CHATKIT_RECORD_VERDICTS=all python -m pytest tests/test_mutants.py   # a whole file
    CHATKIT_RECORD_VERDICTS=no_bye,no_sent python -m pytest tests/test_mutants.py

The second form records only the faults named (a new planted fault, say) and
still compares the others.

A check written "~1.12" in a fault's list was seen both failing and passing for
that fault with the same code: a race in the fault itself (a server that stops
accepting after its first message fails 1.12 or not, depending on whether the
last client was accepted before that message arrived), or a check that a
loaded machine tips. It may fail or pass; every other check must be exactly as
stored. Such marks are written by hand, with the evidence in the commit
message, and recording keeps them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

STORE = Path(__file__).resolve().parent / "verdicts.json"
RECORD = "CHATKIT_RECORD_VERDICTS"
CLEAN = "(no fault)"   # the key of a grading with no fault planted


def load() -> dict:
    try:
        return json.loads(STORE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def to_record() -> set[str] | str:
    """'all', or the names CHATKIT_RECORD_VERDICTS lists (empty: record nothing)."""
    value = os.environ.get(RECORD, "").strip()
    if value == "all":
        return "all"
    return {name.strip() for name in value.split(",") if name.strip()}


def order(number: str) -> tuple:
    return tuple(int(part) for part in number.split("."))


def dump(store: dict) -> str:
    """The store as JSON, one fault a line (so that a diff shows one line a fault)."""
    files = []
    for test_file in sorted(store):
        faults = store[test_file]
        files.append("  %s: {\n%s\n  }" % (json.dumps(test_file), ",\n".join(
            "    %s: %s" % (json.dumps(fault), json.dumps(faults[fault]))
            for fault in sorted(faults))))
    return "{\n%s\n}\n" % ",\n".join(files)


def agrees(failed: list[str], stored: list[str]) -> bool:
    """Whether the checks failed are the stored ones, a '~' check either way."""
    races = {c[1:] for c in stored if c.startswith("~")}
    return set(failed) - races == {c for c in stored if not c.startswith("~")}


def with_races(failed: list[str], stored: list[str]) -> list[str]:
    """The checks failed, as stored: the '~' marks of the stored list kept."""
    races = {c[1:] for c in stored if c.startswith("~")}
    checks = [c for c in failed if c not in races] + ["~" + c for c in races]
    return sorted(checks, key=lambda c: order(c.lstrip("~")))


SHOWN = 4000   # characters of a newly failing check's text shown


def compare(test_file: str, seen: dict[str, list[str]], shown=None) -> list[str]:
    """Compare `seen` ({fault: the checks it failed}) with what the store holds for
    `test_file`; record what CHATKIT_RECORD_VERDICTS asks first. The differences,
    each a sentence (empty: the same verdicts), followed by the failure text of each
    check a fault now also fails, when `shown(fault, check)` gives it: a difference seen
    once on a busy machine is understood from its text, not from a rerun."""
    seen = {str(fault): sorted(set(failed), key=order) for fault, failed in seen.items()}
    store = load()
    stored = store.get(test_file, {})
    wanted = to_record()
    if wanted:
        recorded = {f: with_races(seen[f], stored.get(f, [])) for f in seen
                    if wanted == "all" or f in wanted}
        if wanted != "all":
            recorded = dict(stored, **recorded)
        store[test_file] = {f: recorded[f] for f in sorted(recorded)}
        STORE.write_text(dump(store), encoding="utf-8")
        stored = store[test_file]
    command = "CHATKIT_RECORD_VERDICTS=%%s python -m pytest %s" % test_file
    problems = []
    for fault, failed in sorted(seen.items()):
        if fault not in stored:
            problems.append("%s: no verdict stored (it fails %s now). If that is right, add it: "
                            "%s" % (fault, ", ".join(failed) or "no check",
                                    command % fault))
        elif not agrees(failed, stored[fault]):
            races = [c[1:] for c in stored[fault] if c.startswith("~")]
            new = [c for c in failed if c not in stored[fault] and c not in races]
            gone = [c for c in stored[fault] if c not in failed and not c.startswith("~")]
            problems.append("%s: failed %s, stored %s (%s%s%s)" % (
                fault, ", ".join(failed) or "no check", ", ".join(stored[fault]) or "no check",
                "now also fails " + ", ".join(new) if new else "",
                "; " if new and gone else "",
                "no longer fails " + ", ".join(gone) if gone else ""))
            if shown is not None:
                problems += ["%s, %s: %s" % (fault, check, shown(fault, check)[:SHOWN])
                             for check in new]
    stale = sorted(set(stored) - set(seen))
    if stale:
        problems.append("stored but no longer graded here: %s (to drop them: %s)"
                        % (", ".join(stale), command % "all"))
    if problems:
        problems.append("Each planted fault must fail exactly the checks it failed when "
                        "%s was written. If a check changed on purpose, record the new "
                        "verdicts (%s), read the diff and commit it with the change "
                        "(tests/verdicts.py)." % (STORE.name, command % "all"))
    return problems
