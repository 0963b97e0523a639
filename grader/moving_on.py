"""Moving on: each stage starts from your own code of the stage before it.

    python -m grader next                 start the next stage from your last one
    python -m grader next --from FOLDER   start it from FOLDER instead (another copy
                                          of yours, or the reference your teacher gave)
    python -m grader next --impl DIR      in DIR, not the kit's stages/

In the kit, a stage's folder holds only what that stage adds: its chat_server.py
and chat_client.py (which say what the stage's programs are made of) and the
modules with its TODOs (stage 2: commands.py and naming.py). What it builds on,
your code of the stages before (server.py, client.py, ...), is not there: `next`
copies it from your folder of the stage before, every file the new folder does
not have yet. It never replaces a file, so running it twice, or after you have
started the new stage, loses nothing.

A stage whose programs import a module their folder does not have is not
started: the grader says so instead of running its checks (`missing_modules`).
A folder whose programs import nothing of their own (a hand-in laid out with
one whole program per stage) is complete as it is.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import sys
from pathlib import Path

from grader.stages import DECLARED, STAGES, stage

KIT = Path(__file__).resolve().parent.parent
PROGRAMS = ("chat_server.py", "chat_client.py")   # each stage's own: never carried
KIT_MODULES = {"protocol", "todo"}                 # next to the stage folders, not in them
JUNK = {"__pycache__", ".DS_Store"}
TODO_LINE = re.compile(r"^\s*# TODO (\d+\.\d+)\b", re.M)
STAND_IN = re.compile(r"""\bnot_implemented\(\s*["'](\d+\.\d+)["']""")


# --- what a stage folder lacks -----------------------------------------------------

def imported_modules(program: Path) -> set[str]:
    """The modules a program imports in its top-level code (the first name of each)."""
    try:
        tree = ast.parse(program.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return set()   # a program Python can't read: the grader shows why when it runs it
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def missing_modules(folder: Path) -> list[str]:
    """The files of their own that a stage folder's programs import and nothing holds
    (['client.py', 'server.py'] for a stage not started); [] when none is missing.

    A module is found where the programs look for protocol.py: in the stage folder,
    next to it, or one folder up (a hand-in may keep modules of its own there).
    """
    places = [folder, folder.parent, folder.parent.parent]
    missing = set()
    for name in PROGRAMS:
        program = folder / name
        if not program.is_file():
            continue
        for module in imported_modules(program):
            if module in sys.stdlib_module_names or module in KIT_MODULES:
                continue
            if not any((place / (module + ".py")).exists() or (place / module).is_dir()
                       for place in places):
                missing.add(module + ".py")
    return sorted(missing)


def not_started_message(folder: str, missing: list[str]) -> str:
    """What a check of a stage not started says (the grader runs none of them)."""
    before = previous(folder)
    source = "your %s" % before if before else "the stage before it"
    return ("Stage %s is not started: its folder has no %s (your code of the stage before "
            "it, which each stage builds on). Run `python -m grader next` to start it from "
            "%s (docs/students.md § Moving on). This check was not run and scores 0."
            % (folder, ", ".join(missing), source))


def previous(folder: str) -> str | None:
    """The stage before `folder` in the course ('1_echo' for '2_naming'), or None."""
    number = stage(folder).number
    return next((s.folder for s in DECLARED if s.number == number - 1), None)


# --- moving on -------------------------------------------------------------------

class CannotMoveOn(Exception):
    """Why `next` did nothing: one line for the student."""


def stage_to_start(impl: Path) -> str:
    """The first stage of `impl` (in the course's order) that is not started."""
    for folder in STAGES:
        if (impl / folder).is_dir() and missing_modules(impl / folder):
            return folder
    raise CannotMoveOn("every stage in %s is started already: there is nothing to move on to"
                       % impl)


def carry(source: Path, target: Path) -> tuple[list[str], list[str]]:
    """Copy every file of `source` that `target` lacks (but the stage's own programs):
    (the names copied, the names `target` has already and keeps)."""
    copied, kept = [], []
    for path in sorted(source.iterdir()):
        if path.name in PROGRAMS or path.name in JUNK or path.suffix == ".pyc":
            continue
        if (target / path.name).exists():
            kept.append(path.name)
        elif path.is_dir():
            shutil.copytree(path, target / path.name,
                            ignore=shutil.ignore_patterns(*JUNK, "*.pyc"))
            copied.append(path.name + "/")
        elif path.is_file():
            shutil.copy2(path, target / path.name)
            copied.append(path.name)
    return copied, kept


def todos_in(folder: Path, names: list[str], pattern: re.Pattern = TODO_LINE) -> list[str]:
    """The TODO numbers in those files of `folder` (their '# TODO N.k' lines, or what
    `pattern` finds), in order."""
    found = set()
    for name in names:
        path = folder / name
        if path.is_file() and path.suffix == ".py":
            found |= set(pattern.findall(path.read_text(encoding="utf-8", errors="replace")))
    return sorted(found, key=lambda todo: tuple(int(part) for part in todo.split(".")))


def listed(todos: list[str]) -> str:
    """['2.1', '2.2', '2.3'] -> 'TODO 2.1 to 2.3'; ['3.1', '3.2'] -> 'TODO 3.1 and 3.2';
    ['2.5', '3.1'] -> 'TODO 2.5 and 3.1'."""
    numbers = [tuple(int(part) for part in todo.split(".")) for todo in todos]
    in_a_row = all(b == (a[0], a[1] + 1) for a, b in zip(numbers, numbers[1:]))
    if len(todos) > 2 and in_a_row:
        return "TODO %s to %s" % (todos[0], todos[-1])
    return "TODO " + (", ".join(todos[:-1]) + " and " if len(todos) > 1 else "") + todos[-1]


def move_on(impl: Path, source: Path | None = None) -> str:
    """Start the next stage of `impl` from `source` (default: its stage before); the
    report for the student. Raises CannotMoveOn."""
    folder = stage_to_start(impl)
    before = previous(folder)
    if source is None:
        if before is None or not (impl / before).is_dir():
            raise CannotMoveOn("stage %s has no stage before it in %s to start from: "
                               "give one with --from FOLDER" % (folder, impl))
        source = impl / before
    if not source.is_dir():
        raise CannotMoveOn("--from %s: no such folder" % source)
    lacking = missing_modules(source)
    if lacking:
        raise CannotMoveOn("%s is not started itself (it has no %s): move on to it first"
                           % (source, ", ".join(lacking)))
    target = impl / folder
    own = sorted(p.name for p in target.iterdir() if p.name not in JUNK)
    undone = todos_in(source, sorted(p.name for p in source.iterdir()), STAND_IN)
    copied, kept = carry(source, target)
    still = missing_modules(target)
    lines = ["Stage %s now starts from %s." % (folder, source)]
    lines.append("  copied: %s" % (", ".join(copied) or "nothing"))
    if kept:
        lines.append("  kept as they were (already in %s): %s" % (target, ", ".join(kept)))
    new = [name for name in own if name not in PROGRAMS]
    todos = todos_in(target, new)
    lines.append("  new in this stage: %s%s" % (", ".join(new) or "nothing",
                                                " (%s)" % listed(todos) if todos else ""))
    if undone:
        lines.append("Note: %s still runs the stand-in of %s, not done there. What was "
                     "copied keeps it: finish it in either folder (each stage is graded on "
                     "its own)." % (source, listed(undone)))
    if still:
        lines.append("Still missing: %s. Copy them into %s by hand from where you wrote them."
                     % (", ".join(still), target))
    lines.append("Grade it with: python -m pytest grader --stage %d" % stage(folder).number)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grader next",
        description="Start the next stage from your own code of the stage before it: copies "
                    "every file of that stage's folder that the next stage's folder does not "
                    "have (never replacing one).")
    parser.add_argument("--impl", metavar="DIR", default=str(KIT / "stages"),
                        help="the folder of your stage folders (default: the kit's stages/)")
    parser.add_argument("--from", dest="source", metavar="FOLDER", default=None,
                        help="start from this stage folder instead (another copy of yours, "
                             "or a reference your teacher handed out)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    impl = Path(args.impl)
    if not impl.is_dir():
        print("python -m grader next: --impl %s: no such folder" % impl, file=sys.stderr)
        return 2
    try:
        print(move_on(impl, Path(args.source) if args.source else None))
    except CannotMoveOn as reason:
        print("python -m grader next: %s" % reason, file=sys.stderr)
        return 2
    except OSError as error:
        print("python -m grader next: %s" % error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
