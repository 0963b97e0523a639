"""Grade a whole class: `python -m grader batch SUBMISSIONS --out OUT`.

SUBMISSIONS holds one folder or one .zip per student (the name, without .zip,
is the student's). Each submission is copied into a private folder
(grader/teach/submissions.py), graded by the real grader in a process group of its
own under a time limit, several at once (--jobs), and written up:

    OUT/grades.csv            one row per student, always
    OUT/checks.csv            one row per student and check
    OUT/<student>/results.json, feedback.txt   what that student would see
    OUT/report.html           the class at a glance, for the teacher (batch_page.py)
    OUT/canvas.csv, moodle.csv  with --roster: the grades as Canvas and Moodle import
                              them (grader/teach/gradebook.py)

Running it again with the same OUT grades only the submissions that changed
(or are new); --regrade NAME grades one student again, --force them all.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from grader import isolation, users
from grader.stages import STAGES, stages_named, weights_example
from grader.teach import gradebook
from grader.teach.batch_page import report
from grader.teach.rows import (Row, all_checks, check_order, class_max, describe_row,
                               failure_counts, stage_of, title_of)
from grader.teach.submissions import (ERROR, NO_SUBMISSION, Prepared, SubmissionProblem,
                                error_explanation, grade, is_junk, prepare, stop,
                                timeout_explanation, zero_results)

GRADES_COLUMNS = ["student", *STAGES, "total", "max_score", "status", "seconds"]
CHECKS_COLUMNS = ["student", "check", "title", "stage", "score", "max_score", "status"]
DEFAULT_TIMEOUT = 300.0
STATE_FILE = "grading.json"     # OUT/<student>/grading.json: what was graded, to skip it next time
SETTINGS_FILE = "batch.json"    # OUT/batch.json: the run's settings, kept for the next run
RESERVED = {"grades.csv", "checks.csv", "report.html", "canvas.csv", "moodle.csv", SETTINGS_FILE,
            "con", "prn", "aux", "nul",
            *("com%d" % i for i in range(1, 10)), *("lpt%d" % i for i in range(1, 10))}


class BadInput(Exception):
    """A mistake in the command line: one line of explanation, no traceback."""


@dataclass
class Entry:
    student: str
    paths: list[Path]
    folder: str = ""           # OUT/<folder>: the student's name made safe as a folder name


@dataclass
class Options:
    submissions: Path
    out: Path
    jobs: int
    timeout: float
    force: bool
    stages: list[str]
    run_as: str | None
    stage_args: list[str] = field(default_factory=list)
    roster: gradebook.Roster | None = None
    weights: dict = field(default_factory=dict)      # stage: the points it is worth in the exports
    assignment: str = ""                             # the exports' grade column
    regrade: list[str] = field(default_factory=list)
    regrading: set = field(default_factory=set)      # the submission names --regrade picked
    settings: dict = field(default_factory=dict)     # what OUT/batch.json keeps for the next run
    kept: list[str] = field(default_factory=list)    # the options taken from OUT/batch.json


# --- the command line ---------------------------------------------------------------

def parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m grader batch",
        description="Grade every submission in SUBMISSIONS (one folder or .zip per student) "
                    "and write grades.csv, checks.csv, report.html and a folder per student "
                    "to OUT.")
    parser.add_argument("submissions", metavar="SUBMISSIONS",
                        help="folder with one folder or .zip per student")
    parser.add_argument("--out", required=True, metavar="OUT", help="folder for the results")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="gradings at once (default: the number of cores, %(default)s)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="time limit for one student's grading (default %.0f)"
                             % DEFAULT_TIMEOUT)
    parser.add_argument("--force", action="store_true",
                        help="grade everyone again, even submissions unchanged since the last run")
    parser.add_argument("--stage", action="append", default=None, metavar="N",
                        help="grade only this stage (1-4 or a name); repeat for several")
    parser.add_argument("--run-as", metavar="USER", default=None,
                        help="run the students' programs as USER (when grading as root)")
    parser.add_argument("--regrade", action="append", default=[], metavar="NAME",
                        help="grade this student again even if their submission is unchanged; "
                             "repeat for several")
    parser.add_argument("--roster", metavar="FILE", default=None,
                        help="CSV of the course's students: submission (their folder or .zip "
                             "name) and their LMS identifiers; also writes canvas.csv and "
                             "moodle.csv")
    parser.add_argument("--weights", metavar="STAGE=POINTS,...", default=None,
                        help="what each stage is worth in canvas.csv and moodle.csv, e.g. "
                             "%s (default: the grader's own points)" % weights_example())
    parser.add_argument("--assignment", metavar="NAME", default=None,
                        help="the grade column's title in canvas.csv and moodle.csv (default: "
                             "Chat kit, and the stages when not all are graded)")
    parser.add_argument("--no-roster", action="store_true",
                        help="write no canvas.csv and moodle.csv, and forget the --roster, "
                             "--weights and --assignment an earlier run kept in OUT")
    args = parser.parse_args(argv)
    kept = keep_settings(args, parser)
    if args.jobs < 1:
        parser.error("--jobs must be 1 or more")
    if args.timeout <= 0:
        parser.error("--timeout must be more than 0 seconds")
    try:
        stages = stages_named(args.stage)
    except ValueError as error:
        parser.error(str(error))
    options = Options(Path(args.submissions), Path(args.out), args.jobs, args.timeout,
                      args.force, stages or list(STAGES), args.run_as, stages)
    check_paths(options)
    try:
        options.weights = gradebook.parse_weights(args.weights)
        if (args.weights is not None or args.assignment is not None) and not args.roster:
            raise BadInput("--weights and --assignment shape canvas.csv and moodle.csv, which "
                           "need --roster FILE (who the students are in the LMS)")
        if args.roster and any(k.startswith("--roster") for k in kept) \
                and not Path(args.roster).is_file():
            raise BadInput("the roster kept from the last run (%s), %s, is gone: give "
                           "--roster FILE, or --no-roster for no exports"
                           % (Path(args.out) / SETTINGS_FILE, args.roster))
        options.roster = gradebook.read_roster(Path(args.roster)) if args.roster else None
    except gradebook.GradebookProblem as problem:
        raise BadInput(str(problem))
    options.assignment = args.assignment or gradebook.default_assignment(options.stages)
    options.regrade = args.regrade
    options.kept = kept
    options.settings = {"stages": stages, "timeout": args.timeout_given, "roster":
                        str(Path(args.roster).resolve()) if args.roster else None,
                        "weights": args.weights, "assignment": args.assignment}
    return options


def keep_settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """The settings an earlier run wrote to OUT/batch.json, for each option this command
    line leaves out (--stage, --timeout, --roster, --weights, --assignment): a regrade
    (`--regrade NAME`, a late submission) writes the same grades.csv and exports as the
    run before it. Returns the options taken, as a command line would give them."""
    if args.no_roster and (args.roster or args.weights is not None
                           or args.assignment is not None):
        parser.error("--no-roster writes no exports: leave out --roster, --weights and "
                     "--assignment")
    before = read_json(Path(args.out) / SETTINGS_FILE) or {}
    kept = []

    def keep(name: str, option: str, shown=str) -> None:
        value = before.get(name)
        if getattr(args, name) is None and value not in (None, [], ""):
            setattr(args, name, value)
            kept.append("%s %s" % (option, shown(value)))

    if args.stage is None and before.get("stages"):
        args.stage = list(before["stages"])
        kept.append("--stage %s" % ",".join(args.stage))
    keep("timeout", "--timeout", lambda v: "%g" % v)
    if not args.no_roster:
        keep("roster", "--roster")
        if args.roster:
            keep("weights", "--weights")
            keep("assignment", "--assignment", lambda v: '"%s"' % v)
    args.stage = args.stage or []
    args.timeout_given = args.timeout   # given or kept: kept again; the default is not
    args.timeout = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    return kept


def check_paths(options: Options) -> None:
    subs, out = options.submissions, options.out
    if not subs.exists():
        raise BadInput("no such folder: %s" % subs)
    if not subs.is_dir():
        raise BadInput("%s is not a folder (SUBMISSIONS holds one folder or .zip per student)"
                       % subs)
    if out.exists() and not out.is_dir():
        raise BadInput("--out %s is a file, not a folder" % out)
    subs_real, out_real = subs.resolve(), out.resolve()
    if out_real == subs_real or subs_real in out_real.parents:
        raise BadInput("--out %s is inside SUBMISSIONS: it would be graded as a student; "
                       "put it elsewhere" % out)
    if options.run_as and options.jobs > 1:
        raise BadInput("--run-as %s with --jobs %d: the gradings running at once would share "
                       "one user, so one student's programs could stop another's. Leave out "
                       "--run-as: as root, each grading gets a user of its own"
                       % (options.run_as, options.jobs))
    if options.run_as:
        try:
            import pwd
            pwd.getpwnam(options.run_as)
        except ImportError:
            raise BadInput("--run-as works on Linux and macOS only")
        except KeyError:
            raise BadInput("--run-as %s: no such user" % options.run_as)
        if os.geteuid() != 0:
            raise BadInput("--run-as %s: only a batch running as root can start programs as "
                           "another user: run it as root, or leave out --run-as" % options.run_as)
        running = isolation.processes_of(run_as_uid(options))
        if running:
            raise BadInput("--run-as %s: %s has processes running (%s): after each grading "
                           "the batch ends every process of that user, so give it a user kept "
                           "for grading alone, with nothing running" % (
                               options.run_as, options.run_as,
                               ", ".join(map(isolation.describe_process, running[:3]))))


def run_as_uid(options: Options) -> int:
    import pwd
    return pwd.getpwnam(options.run_as).pw_uid


def end_the_run_as_users_processes(options: Options) -> None:
    """After each grading under --run-as: every process of that user ends, whatever the
    grading left (a daemon of a grading stopped at --timeout, whose grader had no time
    to end them), before the next grading starts."""
    if options.run_as:
        isolation.end_every_process(run_as_uid(options))


# --- who submitted what ---------------------------------------------------------------

def list_entries(submissions: Path) -> list[Entry]:
    """One Entry per student, sorted by name; hidden files and system junk are skipped."""
    by_student: dict[str, list[Path]] = {}
    for path in sorted(submissions.iterdir()):
        if path.name.startswith(".") or is_junk(path.name):
            continue
        name = path.name[:-4] if path.is_file() and path.name.lower().endswith(".zip") else path.name
        by_student.setdefault(name, []).append(path)
    entries = [Entry(s, paths) for s, paths in sorted(by_student.items())]
    used: set[str] = set()
    for entry in entries:
        entry.folder = safe_folder(entry.student, used)
    return entries


def safe_folder(student: str, used: set[str]) -> str:
    """The student's name as a folder name that is safe everywhere and unique."""
    name = "".join("_" if ch in '<>:"/\\|?*' or ord(ch) < 32 else ch for ch in student)
    name = name.strip().rstrip(". ")
    if not name or name.startswith(".") or name.casefold() in RESERVED:
        name = "_" + name
    unique, n = name, 2
    while unique.casefold() in used:
        unique, n = "%s~%d" % (name, n), n + 1
    used.add(unique.casefold())
    return unique


# --- one student ---------------------------------------------------------------------

def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_text(path: Path, text: str) -> None:
    """Write a file whole or not at all (an interrupted run leaves no half file)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write_student(out: Path, row: Row, feedback: str, state: dict,
                  stages: list[str] | None = None) -> None:
    folder = out / row.folder
    folder.mkdir(parents=True, exist_ok=True)
    results = (row.results if row.status == "graded"
               else zero_results(row.reason, row.seconds, stages))
    write_text(folder / "results.json", json.dumps(results, indent=2, ensure_ascii=False))
    write_text(folder / "feedback.txt", feedback.rstrip() + "\n")
    write_text(folder / STATE_FILE, json.dumps(dict(state, student=row.student, status=row.status,
                                                    seconds=row.seconds), indent=2,
                                               ensure_ascii=False))


def header(student: str, lines: list[str]) -> str:
    return "\n".join(["Chat kit grading: %s" % student, *lines, "", ""])


def not_graded(student: str, status: str, reason: str) -> str:
    return header(student, ["Not graded (%s):" % status]) + reason


def look_at(entry: Entry, options: Options) -> tuple[Row | None, Prepared | None]:
    try:
        return look_at_unsafe(entry, options)
    except Exception as error:   # a bug of ours, or the disk: this row says so, the rest go on
        return problem(entry, options, ERROR, "The batch failed on this submission: %r"
                       % error), None


def look_at_unsafe(entry: Entry, options: Options) -> tuple[Row | None, Prepared | None]:
    """Prepare one submission. Returns (a finished Row, None) when it needs no grading
    (not gradable, or unchanged since the last run), else (None, the prepared copy)."""
    out = options.out
    if len(entry.paths) > 1:
        names = " and ".join(p.name + ("/" if p.is_dir() else "") for p in entry.paths)
        return problem(entry, options, ERROR,
                       "Two submissions for the same student: %s. Keep only one." % names), None
    try:
        prepared = prepare(entry.paths[0], options.stages, readable=bool(options.run_as))
    except SubmissionProblem as issue:
        return problem(entry, options, issue.status, issue.message), None
    state = read_json(out / entry.folder / STATE_FILE) or {}
    results = read_json(out / entry.folder / "results.json")
    unchanged = (not options.force and entry.student not in options.regrading
                 and state.get("fingerprint") == prepared.fingerprint
                 and state.get("run_as") == options.run_as and results is not None
                 and (out / entry.folder / "feedback.txt").is_file())
    reusable = unchanged and (
        state.get("status") == "graded" and isinstance(results.get("tests"), list)
        or state.get("status") == "timeout" and options.timeout <= state.get("timeout", 0))
    if reusable:
        prepared.cleanup()
        return Row(entry.student, entry.folder, state["status"], state.get("seconds", 0.0),
                   results, state.get("reason", ""), reused=True), None
    return None, prepared


def problem(entry: Entry, options: Options, status: str, message: str) -> Row:
    row = Row(entry.student, entry.folder, status, 0.0, None, message)
    write_student(options.out, row, not_graded(entry.student, status, message),
                  {"reason": message}, options.stages)
    return row


def grade_one(entry: Entry, prepared: Prepared, options: Options, live: "LiveProcesses") -> Row:
    try:
        return grade_prepared(entry, prepared, options, live)
    finally:
        prepared.cleanup()


def grade_prepared(entry: Entry, prepared: Prepared, options: Options,
                   live: "LiveProcesses") -> Row:
    work = prepared.folder / "grading"
    work.mkdir(mode=0o700)   # the results: never readable by a --run-as user
    try:
        grading = grade(prepared.impl, options.stage_args, options.timeout, work,
                        run_as=options.run_as, on_start=live.add)
    finally:
        live.discard_finished()
        end_the_run_as_users_processes(options)
    grading = prepared.as_given(grading)   # what was submitted, not our private copy
    if live.stopping:   # interrupted: this grading was cut short, it says nothing of the work
        raise KeyboardInterrupt
    about = header(entry.student, [prepared.describe()])
    state = {"fingerprint": prepared.fingerprint, "run_as": options.run_as,
             "timeout": options.timeout}
    if grading.status == "graded":
        row = Row(entry.student, entry.folder, "graded", grading.seconds, grading.results)
        feedback = about + grading.output
    else:
        reason = (timeout_explanation(options.timeout, grading.output)
                  if grading.status == "timeout" else error_explanation(grading))
        row = Row(entry.student, entry.folder, grading.status, grading.seconds, None, reason)
        feedback = (about + reason + "\n\nEverything the grader printed:\n" + grading.output)
        state["reason"] = reason
    write_student(options.out, row, feedback, state, options.stages)
    return row


class LiveProcesses:
    """The graders running now, so that Ctrl-C (or SIGTERM) can stop them all,
    and when each started, for the estimate of the time left."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.procs: set = set()
        self.started: dict = {}
        self.stopping = False

    def add(self, proc) -> None:
        with self.lock:
            self.procs.add(proc)
            self.started[proc] = time.monotonic()

    def time_left(self, durations: list[float], waiting: int, jobs: int) -> float:
        """Seconds until all is graded, if each grading takes the mean so far."""
        if not durations:
            return 0.0
        mean = statistics.mean(durations)
        now = time.monotonic()
        with self.lock:
            running = [max(0.0, mean - (now - self.started[p]))
                       for p in self.procs if p.poll() is None]
        return (sum(running) + waiting * mean) / jobs

    def discard_finished(self) -> None:
        with self.lock:
            self.procs = {p for p in self.procs if p.poll() is None}
            self.started = {p: t for p, t in self.started.items() if p in self.procs}

    def stop_all(self) -> None:
        self.stopping = True
        with self.lock:
            procs = list(self.procs)
        for proc in procs:
            if proc.poll() is None:
                stop(proc)


# --- the whole class ------------------------------------------------------------------

def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return "%d:%02d" % (seconds // 60, seconds % 60) if seconds < 3600 else \
        "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


def run(options: Options) -> int:
    started = time.monotonic()
    entries = list_entries(options.submissions)
    options.regrading = gradebook.regrade_names(options.regrade, [e.student for e in entries])
    options.out.mkdir(parents=True, exist_ok=True)
    write_text(options.out / SETTINGS_FILE, json.dumps(options.settings, indent=2,
                                                       ensure_ascii=False) + "\n")
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    if options.kept:
        say("batch: as the last run in %s: %s (%s; give an option to change it, "
            "--no-roster for no exports)" % (options.out, ", ".join(options.kept),
                                            options.out / SETTINGS_FILE))
    missing = None if options.run_as else users.unprivileged_python_missing()
    if missing:   # once, first, rather than in every student's grading
        say("batch: WARNING: student programs will run as root, with every right on this "
            "machine: %s" % missing)
    say("batch: %d submission%s in %s; stages %s"
        % (len(entries), "" if len(entries) == 1 else "s", options.submissions,
           ", ".join(options.stages)))
    rows: list[Row] = []
    roster = on_roster(options, entries, say)
    pending: list[tuple[Entry, Prepared]] = []
    live = LiveProcesses()
    pool = ThreadPoolExecutor(max_workers=options.jobs)
    try:
        # 1. Look at every submission (copy, check the layout, fingerprint): quick.
        for entry, (row, prepared) in zip(entries, pool.map(lambda e: look_at(e, options),
                                                            entries)):
            if row is not None:
                rows.append(row)
            else:
                pending.append((entry, prepared))
        reused = sum(r.reused for r in rows)
        say("batch: %d unchanged since the last run, %d not gradable, %d to grade "
            "(%d at once, at most %s each)" % (reused, len(rows) - reused, len(pending),
                                               options.jobs, clock(options.timeout)))
        # 2. Grade the rest, several at once, with a progress line per student.
        futures = {pool.submit(grade_one, entry, prepared, options, live): entry
                   for entry, prepared in pending}
        durations: list[float] = []
        for done, future in enumerate(as_completed(futures), 1):
            entry = futures[future]
            try:
                row = future.result()
            except Exception as error:   # a bug of ours must not lose the other rows
                row = Row(entry.student, entry.folder, ERROR, 0.0, None,
                          "The batch failed on this submission: %r" % error)
                write_student(options.out, row, not_graded(entry.student, ERROR, row.reason), {},
                              options.stages)
            rows.append(row)
            durations.append(row.seconds)
            waiting = max(0, len(pending) - done - options.jobs)
            left = live.time_left(durations, waiting, options.jobs)
            say("[%*d/%d] %s: %s in %.1f s · %s elapsed, about %s left"
                % (len(str(len(pending))), done, len(pending), row.student, describe_row(row),
                   row.seconds, clock(time.monotonic() - started), clock(left)))
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        live.stop_all()
        for _, prepared in pending:
            prepared.cleanup()
        say("batch: interrupted; the students graded so far have their folders in %s, "
            "but grades.csv, checks.csv and report.html were not written." % options.out)
        return 130
    pool.shutdown()
    rows += roster.absent.values()
    rows.sort(key=student_order)
    write_grades(options.out / "grades.csv", rows, options.stages)
    write_checks(options.out / "checks.csv", rows, options.stages)
    lms = export(rows, roster, options)
    (options.out / "report.html").write_text(report(rows, options, roster.warnings),
                                             encoding="utf-8")
    print(summary(rows, options, time.monotonic() - started))
    for line in lms + roster.warnings:
        print(line)
    return 0


def student_order(row: Row) -> tuple[str, str]:
    """grades.csv's order: by name whatever its case ("alice" before "Bob" before
    "Zoë Ünal"), then by its spelling, so that the order is always the same."""
    return row.student.casefold(), row.student


@dataclass
class OnRoster:
    """The class as the roster sees it: who submitted what, and who did not."""
    students: dict = field(default_factory=dict)   # submission name -> its RosterStudent
    absent: dict = field(default_factory=dict)     # roster line -> their "no submission" row
    warnings: list[str] = field(default_factory=list)  # said at the start and at the end


def on_roster(options: Options, entries: list[Entry], say) -> OnRoster:
    """Match the submissions to the roster: a roster student without one gets a row (and a
    folder) of their own, "no submission"; a submission the roster does not name is said
    loudly, and graded all the same."""
    roster = options.roster
    if roster is None:
        return OnRoster()
    found, strangers = gradebook.match(roster, [e.student for e in entries])
    matched = {id(s) for s in found.values()}
    used = {e.folder.casefold() for e in entries}
    absent = {}
    for student in roster.students:
        if id(student) in matched:
            continue
        name = student.label()
        reason = ("No submission: the roster %s (line %d) names this student%s, and "
                  "SUBMISSIONS holds no folder or .zip %s." % (
                      roster.path.name, student.line,
                      " (%s)" % student.name if student.name and student.name != name else "",
                      "named %s" % name if student.submission else
                      "for them (their submission column is empty)"))
        row = Row(name, safe_folder(name, used), NO_SUBMISSION, 0.0, None, reason)
        write_student(options.out, row, not_graded(name, NO_SUBMISSION, reason),
                      {"reason": reason})
        absent[student.line] = row
    say("batch: roster %s: %d students, %d with a submission%s"
        % (roster.path, len(roster.students), len(found),
           "; no submission from %s" % gradebook.listing([r.student for r in absent.values()])
           if absent else ""))
    warnings = []
    if strangers:
        warnings.append("WARNING: %d submission%s not in the roster %s (graded, but in neither "
                        "canvas.csv nor moodle.csv; add %s to the roster's submission column): %s"
                        % (len(strangers), " is" if len(strangers) == 1 else "s are",
                           roster.path.name, "it" if len(strangers) == 1 else "them",
                           gradebook.listing(strangers)))
    for line in warnings:
        say("batch: " + line)
    return OnRoster(found, absent, warnings)


def export(rows: list[Row], roster: OnRoster, options: Options) -> list[str]:
    """canvas.csv and moodle.csv, and what the summary says of them."""
    if options.roster is None:   # an earlier run's exports would hold grades no longer true
        stale = [options.out / n for n in ("canvas.csv", "moodle.csv")
                 if (options.out / n).is_file()]
        for path in stale:
            path.unlink()
        return ["Removed %s of an earlier run: without --roster there are no exports."
                % " and ".join(str(p) for p in stale)] if stale else []
    absent = {id(r) for r in roster.absent.values()}
    by_name = {r.student: r for r in rows if id(r) not in absent}   # the submissions' rows
    row_of = {s.line: by_name[name] for name, s in roster.students.items()}
    row_of.update(roster.absent)
    scale = gradebook.scale_for(rows, options.stages, options.weights)
    done = gradebook.write_exports(options.out, options.roster, row_of, scale, options.assignment)
    possible = scale.possible()
    return (["Wrote %s for the %d students of the roster: column \"%s\", out of %s (%s)."
             % (" and ".join(str(f) for f in done.files), len(options.roster.students),
                options.assignment, gradebook.number(possible) if possible != "" else "?",
                scale.describe())] + done.notes)


def write_grades(path: Path, rows: list[Row], stages: list[str]) -> None:
    maximum = class_max(rows, stages)
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(GRADES_COLUMNS)
        for row in rows:
            points = [row.stage_points(s)[0] if s in stages else "" for s in STAGES]
            writer.writerow([row.student, *points, row.total,
                             row.max_score if row.status == "graded" else maximum,
                             row.status, "%.1f" % row.seconds])


def write_checks(path: Path, rows: list[Row], stages: list[str]) -> None:
    checks = all_checks(rows, stages)
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CHECKS_COLUMNS)
        for row in rows:
            if row.status == "graded":
                for t in sorted(row.tests(), key=lambda t: check_order(
                        {"stage": stage_of(t), "number": t["number"]})):
                    writer.writerow([row.student, t["number"], title_of(t), stage_of(t),
                                     t["score"], t["max_score"], t["status"]])
            else:
                for c in checks:
                    writer.writerow([row.student, c["number"], c["title"], c["stage"], 0,
                                     c["max_score"], "not run"])


def summary(rows: list[Row], options: Options, seconds: float) -> str:
    counts = Counter(r.status for r in rows)
    graded = [r for r in rows if r.status == "graded"]
    parts = ["%d %s" % (counts[s], s) for s in ("graded", "timeout", "error", NO_SUBMISSION)
             if counts[s]]
    lines = ["Done in %s: %d student%s: %s (%d unchanged since the last run, not graded again)."
             % (clock(seconds), len(rows), "" if len(rows) == 1 else "s",
                ", ".join(parts) or "none", sum(r.reused for r in rows))]
    if graded:
        totals = [r.total for r in graded]
        lines.append("Total points of the graded: mean %.1f, median %g, of %s."
                     % (statistics.mean(totals), statistics.median(totals), class_max(rows)))
        failed = failure_counts(rows)
        worst = [c for c in all_checks(rows) if failed.get(c["number"])]
        worst.sort(key=lambda c: -failed[c["number"]])
        for c in worst[:3]:
            lines.append("  most failed: %s %s (%d of %d)"
                         % (c["number"], c["title"], failed[c["number"]], len(graded)))
    lines.append("Wrote %s, %s, %s and a folder per student."
                 % tuple(options.out / n for n in ("grades.csv", "checks.csv", "report.html")))
    return "\n".join(lines)


# --- entry point --------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        options = parse(argv)
    except BadInput as error:
        print("python -m grader batch: %s" % error, file=sys.stderr)
        return 2
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM"):
        # Terminated (say, by a scheduler's time limit): stop the graders like Ctrl-C does.
        def on_sigterm(signum, frame):
            raise KeyboardInterrupt
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return run(options)
    except gradebook.GradebookProblem as error:   # before anything is graded
        print("python -m grader batch: %s" % error, file=sys.stderr)
        return 2
    except OSError as error:
        print("python -m grader batch: %s" % error, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
