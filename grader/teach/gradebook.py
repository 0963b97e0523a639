"""The gradebook an LMS takes: `batch --roster FILE [--weights ...] [--assignment NAME]`.

The roster is a CSV the teacher keeps: one row per student of the course, with
the name of the student's submission (their folder or .zip in SUBMISSIONS, a
GitHub user name...) and the identifiers their LMS knows them by. With it,
batch writes beside grades.csv:

    canvas.csv   Canvas's gradebook import: Student, ID, SIS User ID, SIS Login ID,
                 Section, then one column of grades, and its "Points Possible" row
    moodle.csv   Moodle's CSV grade import: one identifier column (email, ID number
                 or username), then one column of grades

Every roster student has a row, submitted or not (no submission: 0). The grade
is the weighted total: with --weights 1_echo=10,2_naming=20,... a stage is
worth that many points, and a student's points in it are scaled to them
(10 x 16/17 = 9.41). The grader's own points (feedback.txt, results.json,
grades.csv) never change.

How the LMSs read these files (their importers' source, and their guides):
Canvas takes a header whose first cell holds "Student" and second "ID",
optionally "SIS User ID" and "SIS Login ID", then "Section"; it finds each
student by ID, then SIS User ID, then SIS Login ID, then name; a row whose first
cell holds "Points Possible" sets each column's maximum; a column whose title
matches no assignment becomes a new one. Moodle maps one column to a user field
(id, idnumber, email or username) that must name an existing user: a row whose
identifier is blank takes the student of the row before it, so moodle.csv never
has one. Moodle refuses a grade above 100 unless the site allows more
(unlimitedgrades). Both accept "." as the decimal point in any language.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from grader.stages import STAGES, stages_named, weights_example


class GradebookProblem(Exception):
    """A mistake in the roster or an option: one line that says where and what to do."""


# --- the roster ---------------------------------------------------------------------------

# The roster's columns, and the header spellings each accepts (compared in lower case,
# without spaces, _ or -), so that an LMS's own export, with a submission column added,
# is a roster as it is: Canvas's (Student, ID, SIS User ID, ...) and Moodle's (First name,
# Last name, ID number, Email address). Other columns (assignments, scores) are ignored.
COLUMNS = {
    "submission": ("submission",),
    "name": ("name", "student", "fullname"),
    "first_name": ("firstname",),
    "last_name": ("lastname", "surname"),
    "canvas_id": ("canvasid",),
    "sis_user_id": ("sisuserid",),
    "sis_login_id": ("sisloginid",),
    "section": ("section",),
    "email": ("email", "emailaddress"),
    "idnumber": ("idnumber",),
    "username": ("username",),
}
CANVAS_IDS = ["canvas_id", "sis_user_id", "sis_login_id"]
MOODLE_IDS = ["email", "idnumber", "username"]
IDENTIFIERS = CANVAS_IDS + MOODLE_IDS
MOODLE_LABELS = {"email": "Email address", "idnumber": "ID number", "username": "Username"}
CANVAS_HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_MAX = 100   # Moodle refuses a grade above this unless the site allows more


@dataclass
class RosterStudent:
    line: int                   # the roster's line, for every message about this student
    submission: str             # their entry's name in SUBMISSIONS ("" if they have none)
    name: str
    ids: dict = field(default_factory=dict)    # canvas_id, sis_user_id, ..., username: value

    def label(self) -> str:
        """How messages name this student: their submission's name, or their name."""
        return self.submission or self.name or next(v for v in self.ids.values() if v)


@dataclass
class Roster:
    path: Path
    students: list[RosterStudent]
    columns: list[str]          # the roster's columns this uses (canonical names)
    ignored: list[str]          # the header's other columns, as spelt there


def key(header: str) -> str:
    return re.sub(r"[\s_\-]", "", header.strip().lower())


def read_roster(path: Path) -> Roster:
    """The roster at `path`, checked whole: any mistake raises GradebookProblem naming its line."""
    where = "--roster %s" % path
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise GradebookProblem("%s: %s" % (where, error.strerror or error))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise GradebookProblem(
            "%s, line %d: not UTF-8 text (byte 0x%02X). Save it as \"CSV UTF-8\" (Excel) or "
            "with the UTF-8 encoding" % (where, line, raw[error.start]))
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","   # Excel in many languages
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise GradebookProblem("%s: the file is empty; its first line names the columns, "
                                   "e.g. submission,name,sis_login_id,email" % where)
        columns, ignored = header_columns(header, where)
        students = [s for s in (roster_row(row, reader.line_num, header, columns, where)
                                for row in reader) if s is not None]
    except csv.Error as error:
        raise GradebookProblem("%s, line %d: %s" % (where, reader.line_num, error))
    if not students:
        raise GradebookProblem("%s: no students, only the header line" % where)
    check_unique(students, where)
    used = [c for c in COLUMNS if c in columns.values()]
    return Roster(path, students, used, ignored)


def header_columns(header: list[str], where: str) -> tuple[dict[int, str], list[str]]:
    """{cell index: canonical column} for the columns the roster uses, and the others."""
    spellings = {spelling: name for name, all_ in COLUMNS.items() for spelling in all_}
    # Canvas's export calls its user ID "ID"; elsewhere "id" could be any number.
    canvas_export = any(key(h) == "student" for h in header)
    columns: dict[int, str] = {}
    ignored = []
    for index, cell in enumerate(header):
        name = spellings.get(key(cell))
        if key(cell) == "id":
            if not canvas_export:
                raise GradebookProblem(
                    "%s, line 1: which ID is the column \"%s\"? Call it canvas_id (Canvas's "
                    "user ID), sis_user_id, idnumber (Moodle's ID number) or username"
                    % (where, cell.strip()))
            name = "canvas_id"
        if name is None:
            if cell.strip():
                ignored.append(cell.strip())
            continue
        if name in columns.values():
            other = next(header[i] for i, n in columns.items() if n == name)
            raise GradebookProblem("%s, line 1: the columns \"%s\" and \"%s\" are both the %s: "
                                   "keep one" % (where, other.strip(), cell.strip(), name))
        columns[index] = name
    found = set(columns.values())
    if "submission" not in found:
        raise GradebookProblem(
            "%s, line 1: no submission column (the header has: %s). The roster needs a column "
            "\"submission\" with each student's folder or .zip name in SUBMISSIONS"
            % (where, ", ".join(h.strip() for h in header if h.strip())))
    if not found & set(IDENTIFIERS):
        raise GradebookProblem(
            "%s, line 1: no column that identifies a student in an LMS. Add one of: %s"
            % (where, ", ".join(IDENTIFIERS)))
    return columns, ignored


def roster_row(row: list[str], line: int, header: list[str], columns: dict[int, str],
               where: str) -> RosterStudent | None:
    """One student, or None for a line that holds none (blank, Canvas's Points Possible)."""
    if len(row) > len(header) and any(cell.strip() for cell in row[len(header):]):
        raise GradebookProblem(
            "%s, line %d: %d cells, but the header has %d. Is there a comma in a name without "
            "quotes around it?" % (where, line, len(row), len(header)))
    cells = {name: (row[i].strip() if i < len(row) else "") for i, name in columns.items()}
    if not any(cells.values()):
        return None    # a blank line, or one of Canvas's rows of "Muted"
    if cells.get("name", "").startswith("Points Possible"):
        return None    # Canvas's export: each assignment's maximum, not a student
    name = cells.get("name") or " ".join(
        filter(None, (cells.get("first_name", ""), cells.get("last_name", ""))))
    ids = {c: cells[c] for c in IDENTIFIERS + ["section"] if c in cells}
    if not any(ids.get(c) for c in IDENTIFIERS):
        raise GradebookProblem(
            "%s, line %d (%s): no identifier; fill in one of its %s"
            % (where, line, cells["submission"] or name or "no name",
               ", ".join(c for c in IDENTIFIERS if c in cells)))
    return RosterStudent(line, cells["submission"], name, ids)


def check_unique(students: list[RosterStudent], where: str) -> None:
    """Each submission name and each identifier belongs to one student only."""
    for column in ["submission"] + IDENTIFIERS:
        seen: dict[str, RosterStudent] = {}
        for student in students:
            value = student.submission if column == "submission" else student.ids.get(column, "")
            if not value:
                continue
            first = seen.setdefault(value.casefold(), student)
            if first is not student:
                raise GradebookProblem(
                    "%s, line %d: the %s \"%s\" is also on line %d; each student comes once"
                    % (where, student.line, column, value, first.line))


def match(roster: Roster, names: list[str]) -> tuple[dict[str, RosterStudent], list[str]]:
    """({submission name: roster student}, the submissions the roster does not name).
    A name matches its roster row exactly, or else in another case (GitHub's are either)."""
    exact = {s.submission: s for s in roster.students if s.submission}
    folded = {s.submission.casefold(): s for s in roster.students if s.submission}
    found: dict[str, RosterStudent] = {n: exact[n] for n in names if n in exact}
    taken = {id(s) for s in found.values()}
    strangers = []
    for name in names:
        if name in found:
            continue
        student = folded.get(name.casefold())
        if student is None or id(student) in taken:
            strangers.append(name)
        else:
            found[name] = student
            taken.add(id(student))
    return found, strangers


# --- --regrade ------------------------------------------------------------------------------

def regrade_names(wanted: list[str], names: list[str]) -> set[str]:
    """The submission names --regrade picks (exact, or in another case); a name that is no
    submission's is a mistake, with the names it may have meant."""
    chosen = set()
    by_fold = {n.casefold(): n for n in names}
    for name in wanted:
        if name in names:
            chosen.add(name)
        elif name.casefold() in by_fold:
            chosen.add(by_fold[name.casefold()])
        else:
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
            raise GradebookProblem(
                "--regrade %s: no submission of that name in SUBMISSIONS%s" % (
                    name, "; did you mean %s?" % " or ".join(close) if close else
                    " (a student's name is their folder's, or their .zip's without .zip)"))
    return chosen


# --- --weights ------------------------------------------------------------------------------

def parse_weights(text: str | None) -> dict[str, float]:
    """'1_echo=10,2=20' -> {'1_echo': 10.0, '2_naming': 20.0}: the points each stage is worth."""
    weights: dict[str, float] = {}
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        stage, equals, value = part.partition("=")
        if not equals:
            raise GradebookProblem("--weights %s: write STAGE=POINTS, e.g. --weights %s"
                                   % (part, weights_example()))
        try:
            (name,) = stages_named([stage.strip()])
        except ValueError:
            raise GradebookProblem("--weights %s: no stage %s; the stages are %s (or 1-%d)"
                                   % (part, stage.strip(), ", ".join(STAGES), len(STAGES)))
        try:
            points = float(value)
        except ValueError:
            raise GradebookProblem("--weights %s: %s is not a number of points"
                                   % (part, value.strip() or "nothing"))
        if not math.isfinite(points) or points < 0:
            raise GradebookProblem("--weights %s: a stage is worth 0 points or more, not %s"
                                   % (part, value.strip()))
        if name in weights:
            raise GradebookProblem("--weights names %s twice" % name)
        weights[name] = points
    return weights


@dataclass
class Scale:
    """What each graded stage is worth in the exports, and its maximum in the grader's points."""
    stages: list[str]
    weights: dict[str, float]          # as the teacher gave them
    maxima: dict[str, int]             # the grader's points of each stage ("" if unknown)

    def worth(self, stage: str):
        return self.weights.get(stage, self.maxima.get(stage, ""))

    def possible(self):
        worth = [self.worth(s) for s in self.stages]
        return "" if "" in worth else sum(worth)

    def total(self, row) -> float:
        """A row's weighted total: each stage's points scaled to what the stage is worth."""
        if row.status != "graded":
            return 0.0
        total = 0.0
        for stage in self.stages:
            points, maximum = row.stage_points(stage)
            if maximum:
                total += self.worth(stage) * points / maximum if stage in self.weights else points
        return total

    def describe(self) -> str:
        parts = ["%s %s%s" % (s, number(self.worth(s)) if self.worth(s) != "" else "?",
                              "" if s in self.weights else " as graded") for s in self.stages]
        return ", ".join(parts)


def scale_for(rows, stages: list[str], weights: dict[str, float]) -> Scale:
    maxima = {}
    for stage in stages:
        seen = Counter(row.stage_points(stage)[1] for row in rows if row.status == "graded")
        maxima[stage] = seen.most_common(1)[0][0] if seen else ""
    return Scale(stages, {s: w for s, w in weights.items() if s in stages}, maxima)


def number(value) -> str:
    """A number as both LMSs read it: '.' for the decimal point, at most 2 decimals, no
    thousands separator, no exponent (16/17 x 10 -> 9.41; 50.0 -> 50)."""
    text = "%.2f" % round(value, 2)
    return text.rstrip("0").rstrip(".") if "." in text else text


# --- the exports ----------------------------------------------------------------------------

def default_assignment(stages: list[str]) -> str:
    return "Chat kit" if stages == STAGES else "Chat kit " + "+".join(stages)


@dataclass
class Exported:
    """What the exports hold, for the summary: where they are and who is left out, and why."""
    files: list[Path]
    notes: list[str]


def write_exports(out: Path, roster: Roster, row_of: dict[int, object], scale: Scale,
                  assignment: str) -> Exported:
    """canvas.csv and moodle.csv in `out`: one row per roster student, in the roster's order.
    `row_of` maps a roster line to that student's row (status, stage_points)."""
    notes = []
    possible = scale.possible()
    grades = {s.line: number(scale.total(row_of[s.line])) for s in roster.students}
    files = [out / "canvas.csv"]
    canvas = [s for s in roster.students if s.name or any(s.ids.get(c) for c in CANVAS_IDS)]
    write_csv(files[0], [CANVAS_HEADER + [assignment],
                         ["Points Possible", "", "", "", "", number(possible) if possible != ""
                          else ""]] +
              [[s.name, s.ids.get("canvas_id", ""), s.ids.get("sis_user_id", ""),
                s.ids.get("sis_login_id", ""), s.ids.get("section", ""), grades[s.line]]
               for s in canvas])
    left_out(notes, "canvas.csv", [s for s in roster.students if s not in canvas],
             "no name, canvas_id, sis_user_id or sis_login_id")
    if not any(c in roster.columns for c in CANVAS_IDS):
        notes.append("canvas.csv: the roster has no canvas_id, sis_user_id or sis_login_id "
                     "column, so Canvas will find students by name only")
    column = moodle_column(roster)
    if column is None:
        (out / "moodle.csv").unlink(missing_ok=True)   # an older run's, for another roster
        notes.append("moodle.csv: not written: the roster has no email, idnumber or username "
                     "column, which Moodle finds students by")
    else:
        files.append(out / "moodle.csv")
        moodle = [s for s in roster.students if s.ids.get(column)]
        write_csv(files[1], [[MOODLE_LABELS[column], assignment]] +
                  [[s.ids[column], grades[s.line]] for s in moodle])
        left_out(notes, "moodle.csv", [s for s in roster.students if s not in moodle],
                 "no %s" % column)
        if possible != "" and possible > MOODLE_MAX:
            notes.append("moodle.csv: grades go up to %s, and Moodle refuses grades above %d "
                         "unless the site allows them (unlimitedgrades); --weights can make the "
                         "stages add up to 100" % (number(possible), MOODLE_MAX))
    return Exported(files, notes)


def moodle_column(roster: Roster) -> str | None:
    """The one identifier column of moodle.csv: the one most students have (email first)."""
    counts = {c: sum(1 for s in roster.students if s.ids.get(c)) for c in MOODLE_IDS
              if c in roster.columns}
    counts = {c: n for c, n in counts.items() if n}
    return max(counts, key=lambda c: (counts[c], -MOODLE_IDS.index(c))) if counts else None


def left_out(notes: list[str], file: str, students: list[RosterStudent], why: str) -> None:
    if students:
        notes.append("%s leaves out %d student%s with %s (enter their grades by hand): %s"
                     % (file, len(students), "" if len(students) == 1 else "s", why,
                        listing(["%s (line %d)" % (s.label(), s.line) for s in students])))


def write_csv(path: Path, rows: list[list]) -> None:
    """UTF-8 with a byte-order mark, like grades.csv: both LMSs skip the mark, and a
    spreadsheet needs it to show names in any script. Written whole or not at all."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows(rows)
    partial.replace(path)


def listing(names: list[str], most: int = 10) -> str:
    """'ann, bob, "Diaz, Dave" and 3 more': a name with a comma in quotes."""
    shown = ", ".join('"%s"' % n if "," in n else n for n in names[:most])
    return shown + (" and %d more" % (len(names) - most) if len(names) > most else "")
