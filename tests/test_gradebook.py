"""The gradebook an LMS takes: `batch --roster FILE --weights ...`, canvas.csv, moodle.csv,
`--regrade NAME`, and report.html's charts and grid at every class size.

One real batch on stage 1: ann (correct), Bob (one planted bug: check 1.2), and a stray
submission the roster does not name; the roster (a Canvas export with a submission
column added, its Points Possible row and an assignment column included) also names
carol, who submitted nothing, and Dave, who has no submission name and no email. The
exports are read back the way Canvas's and Moodle's importers read them (their source:
canvas-lms app/models/gradebook_importer.rb, moodle grade/import/csv/classes/load_data.php).
Then `--regrade bob` grades Bob alone again, under other weights. Everything else runs in
this process, without grading.
"""

import html.parser
import json
import re
import sys

import pytest

from gradekit import KIT, STAGES, stage_maximum
from test_batch import read_csv, run_batch, stage_folder

sys.path.insert(0, str(KIT))
from grader.teach import batch, batch_page, gradebook  # noqa: E402
from grader.teach.rows import Row  # noqa: E402
from grader.teach.gradebook import GradebookProblem  # noqa: E402

POINTS, CHECKS = stage_maximum("1_echo")
ROSTER = (
    "Student,ID,SIS User ID,SIS Login ID,Section,Email address,submission,Quiz 1 (101)\n"
    "    Points Possible,,,,,,,10.00\n"
    '"Lee, Ann",1001,S-001,ann,Sec A,ann@uni.example,ann,8\n'
    '"Brown, Bob",1002,S-002,bob,Sec A,bob@uni.example,bob,7\n'
    '"Cruz, Carol",1003,S-003,carol,Sec B,carol@uni.example,carol,9\n'
    '"Diaz, Dave",1004,S-004,dave,Sec B,,,\n')
CANVAS_HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


def scaled(points: float, worth: float) -> str:
    """What a stage worth `worth` gives for `points` of the grader's: 2 decimals at most."""
    return gradebook.number(worth * points / POINTS)


# --- how the LMSs read the files (the rules of their importers) --------------------------------

def canvas_reads(path):
    """canvas.csv as Canvas's gradebook importer reads it: {student: (ids, grade)} and the
    points possible of the one assignment. Fails where Canvas would refuse or misread it."""
    rows = read_csv(path)
    header = rows[0]
    # The header: "Student", "ID", then "SIS User ID" and "SIS Login ID", then "Section".
    assert len(header) > 3 and "Student" in header[0] and "ID" in header[1], header
    assert re.search(r"SIS\s+User\s+ID", header[2]) and re.search(r"SIS\s+Login\s+ID", header[3])
    assert "Section" in header[4], "Canvas wants Section as the last student column: %s" % header
    assignments = header[5:]
    assert len(assignments) == 1 and not re.search(
        "Current Score|Current Points|Final Score|Final Points|Final Grade", assignments[0])
    possible, students = None, {}
    for row in rows[1:]:
        assert len(row) == len(header), "a ragged row: %s" % row
        grade = canvas_number(row[5])
        if "Points Possible" in row[0]:
            possible = grade
            continue
        # Canvas finds the student by ID, else SIS User ID, else SIS Login ID, else name.
        assert row[0] or row[1] or row[2] or row[3], "Canvas could not tell who: %s" % row
        students[row[0]] = (tuple(row[1:5]), grade)
    return assignments[0], possible, students


def canvas_number(text):
    """Canvas's decimal_comma_to_period converter, then a number (blank: no grade)."""
    if re.fullmatch(r"-?[0-9.,]+%?", text):
        parts = re.split(r"[,.]", text)
        text = parts[-1] if len(parts) == 1 else "".join(parts[:-1]) + "." + parts[-1]
    return float(text) if text else None


def moodle_reads(path):
    """moodle.csv as Moodle's CSV grade import reads it, the first column mapped to a user
    field: {identifier: grade}. Fails where Moodle would skip a line, give a grade to the
    wrong student (a blank identifier takes the previous line's), or refuse a grade."""
    rows = read_csv(path)   # Moodle strips the byte-order mark too (csvlib's trim_utf8_bom)
    header = rows[0]
    assert len(header) >= 2, "Moodle skips lines of one cell: %s" % header
    grades = {}
    for row in rows[1:]:
        assert len(row) == len(header) >= 2, row
        assert row[0].strip(), "a blank identifier takes the previous student's: %s" % row
        value = row[1].strip()
        assert re.fullmatch(r"[0-9]+(\.[0-9]+)?", value), \
            "Moodle's unformat_float reads %r in no language" % value
        assert float(value) <= gradebook.MOODLE_MAX, "Moodle refuses grades above 100"
        assert row[0] not in grades
        grades[row[0]] = float(value)
    return header, grades


# --- the class, graded once --------------------------------------------------------------------

@pytest.fixture(scope="module")
def lms(tmp_path_factory, report):
    root = tmp_path_factory.mktemp("lms")
    subs = root / "submissions"
    stage_folder(subs / "ann" / "1_echo")
    stage_folder(subs / "Bob" / "1_echo", buggy=True)     # the roster spells it bob
    stage_folder(subs / "stray" / "1_echo")
    roster = root / "roster.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    out = root / "out"
    code, stdout, stderr, seconds = run_batch(
        subs, "--out", out, "--jobs", 3, "--stage", 1, "--timeout", 120,
        "--roster", roster, "--weights", "1=50")
    assert code == 0, "batch exited %s:\n%s\n%s" % (code, stdout, stderr)
    report("gradebook: 3 submissions on stage 1 with a roster of 4, --jobs 3: %.1f s" % seconds)
    return root, subs, roster, out, stdout, stderr


def test_every_roster_student_in_canvas_csv(lms):
    root, subs, roster, out, stdout, stderr = lms
    assignment, possible, students = canvas_reads(out / "canvas.csv")
    assert read_csv(out / "canvas.csv")[0] == CANVAS_HEADER + ["Chat kit 1_echo"]
    assert assignment == "Chat kit 1_echo" and possible == 50
    assert list(students) == ["Lee, Ann", "Brown, Bob", "Cruz, Carol", "Diaz, Dave"], \
        "one row per roster student, in the roster's order"
    assert students["Lee, Ann"] == (("1001", "S-001", "ann", "Sec A"), 50)
    assert students["Brown, Bob"][1] == float(scaled(POINTS - 1, 50)), \
        "Bob's planted bug costs 1 point of %d, scaled to a stage worth 50" % POINTS
    assert students["Cruz, Carol"][1] == students["Diaz, Dave"][1] == 0
    assert "stray" not in (out / "canvas.csv").read_text(encoding="utf-8-sig")
    raw = (out / "canvas.csv").read_text(encoding="utf-8-sig").splitlines()
    assert raw[1] == "Points Possible,,,,,50" and raw[3].endswith("," + scaled(POINTS - 1, 50))


def test_moodle_csv_one_identifier_column(lms):
    root, subs, roster, out, stdout, stderr = lms
    header, grades = moodle_reads(out / "moodle.csv")
    assert header == ["Email address", "Chat kit 1_echo"]
    assert grades == {"ann@uni.example": 50, "bob@uni.example": float(scaled(POINTS - 1, 50)),
                      "carol@uni.example": 0}
    assert "moodle.csv leaves out 1 student with no email" in stdout and \
        "Diaz, Dave (line 6)" in stdout, stdout


def test_grades_csv_keeps_its_columns_and_gains_the_absent(lms):
    root, subs, roster, out, stdout, stderr = lms
    rows = read_csv(out / "grades.csv")
    assert rows[0] == batch.GRADES_COLUMNS
    by = {r[0]: dict(zip(rows[0], r)) for r in rows[1:]}
    assert set(by) == {"Bob", "ann", "stray", "carol", "Diaz, Dave"}
    assert by["ann"]["total"] == by["stray"]["total"] == str(POINTS), \
        "grades.csv keeps the grader's own points, whatever the weights"
    assert by["Bob"]["total"] == str(POINTS - 1) and by["stray"]["status"] == "graded"
    for absent in ("carol", "Diaz, Dave"):
        assert by[absent]["status"] == "no submission" and by[absent]["total"] == "0"
    feedback = (out / "carol" / "feedback.txt").read_text(encoding="utf-8")
    assert "the roster roster.csv (line 5) names this student (Cruz, Carol)" in feedback
    results = json.loads((out / "ann" / "results.json").read_text(encoding="utf-8"))
    assert results["score"] == POINTS and len(results["tests"]) == CHECKS, \
        "results.json keeps the grader's points"


def test_stray_submission_said_loudly(lms):
    root, subs, roster, out, stdout, stderr = lms
    warning = "WARNING: 1 submission is not in the roster roster.csv"
    assert warning in stderr and warning in stdout, "said at the start and in the summary"
    assert ": stray" in stdout
    assert "roster %s: 4 students, 2 with a submission; no submission from carol, \"Diaz, Dave\"" \
        % roster in stderr, stderr
    page = (out / "report.html").read_text(encoding="utf-8")
    assert '<p class="warn">' + warning in page
    assert "out of 50 (1_echo 50)" in stdout, stdout


def test_regrade_one_student_with_new_weights(lms):
    """--regrade bob grades Bob alone again (his submission unchanged); new weights need none."""
    root, subs, roster, out, stdout, stderr = lms
    before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/results.json")}
    code, stdout, stderr, seconds = run_batch(
        subs, "--out", out, "--jobs", 3, "--stage", 1, "--timeout", 120,
        "--roster", roster, "--weights", "1_echo=20", "--regrade", "bob")
    assert code == 0, stderr
    assert "2 unchanged since the last run" in stderr and "1 to grade" in stderr, stderr
    after = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/results.json")}
    assert after["Bob"] != before["Bob"], "--regrade bob did not grade Bob again"
    assert after["ann"] == before["ann"] and after["stray"] == before["stray"]
    assignment, possible, students = canvas_reads(out / "canvas.csv")
    assert possible == 20 and students["Lee, Ann"][1] == 20
    assert students["Brown, Bob"][1] == float(scaled(POINTS - 1, 20))
    # --no-roster: nothing to grade again, and no export of an earlier run left behind.
    code, stdout, stderr, seconds = run_batch(subs, "--out", out, "--stage", 1, "--no-roster")
    assert code == 0 and "0 to grade" in stderr, stderr
    assert "Removed" in stdout and not (out / "canvas.csv").exists() \
        and not (out / "moodle.csv").exists(), stdout


# --- the roster, the options: every mistake is one line that names its place -------------------

@pytest.mark.parametrize("text, phrase", [
    ("name,email\nann,a@x\n", "line 1: no submission column (the header has: name, email)"),
    ("submission,name\nann,Ann\n", "line 1: no column that identifies a student"),
    ("submission,email\nann,a@x\nbob,b@x\nAnn,c@x\n",
     'line 4: the submission "Ann" is also on line 2'),
    ("submission,email\nann,a@x\nbob,A@X\n", 'line 3: the email "A@X" is also on line 2'),
    ("submission,email,sis_user_id\nann,a@x,1\nbob,,\n",
     "line 3 (bob): no identifier; fill in one of its sis_user_id, email"),
    ("submission,email\nann,a@x\nbob,b@x,Brown\n", "line 3: 3 cells, but the header has 2"),
    ("submission,id\nann,7\n", 'line 1: which ID is the column "id"?'),
    ("submission,email,Email address\nann,a@x,a@x\n",
     'line 1: the columns "email" and "Email address" are both the email'),
    ("", "the file is empty"),
    ("submission,email\n", "no students, only the header line"),
])
def test_roster_mistakes(tmp_path, text, phrase):
    path = tmp_path / "roster.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(GradebookProblem) as caught:
        gradebook.read_roster(path)
    assert phrase in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


def test_roster_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_bytes("submission,email\nann,a@x\nzoë,z@x\n".encode("cp1252"))
    with pytest.raises(GradebookProblem, match=r"line 3: not UTF-8 text \(byte 0xEB\)"):
        gradebook.read_roster(path)


def test_roster_from_moodle_export_with_semicolons(tmp_path):
    """Moodle's export (First name, Last name, ID number, Email address), saved by a
    spreadsheet that separates with semicolons, a submission column added."""
    path = tmp_path / "roster.csv"
    path.write_text("\ufeffFirst name;Last name;ID number;Institution;Email address;Submission\n"
                    "Zoë;Ng;20231;Uni;z@x;zoe-ng\n", encoding="utf-8")
    roster = gradebook.read_roster(path)
    (zoe,) = roster.students
    assert (zoe.name, zoe.submission, zoe.ids["idnumber"], zoe.ids["email"]) == \
        ("Zoë Ng", "zoe-ng", "20231", "z@x")
    assert roster.ignored == ["Institution"] and gradebook.moodle_column(roster) == "email"


def test_matching_exact_first_then_any_case(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("submission,email\nbob,b@x\nann,a@x\n", encoding="utf-8")
    roster = gradebook.read_roster(path)
    found, strangers = gradebook.match(roster, ["Ann", "Bob", "bob", "eve"])
    assert {n: s.submission for n, s in found.items()} == {"bob": "bob", "Ann": "ann"}
    assert strangers == ["Bob", "eve"], "bob is taken by its exact match"


@pytest.mark.parametrize("text, phrase", [
    ("5=10", "no stage 5"),
    ("1_echo=-3", "a stage is worth 0 points or more, not -3"),
    ("1_echo=ten", "ten is not a number of points"),
    ("1_echo", "write STAGE=POINTS"),
    ("1=10,1_echo=20", "names 1_echo twice"),
    ("2=nan", "not nan"),
])
def test_weights_mistakes(text, phrase):
    with pytest.raises(GradebookProblem, match=re.escape(phrase)):
        gradebook.parse_weights(text)


def test_weights_and_numbers():
    assert gradebook.parse_weights("1=10, naming=20.5,4_exit=0") == \
        {"1_echo": 10, "2_naming": 20.5, "4_exit": 0}
    assert [gradebook.number(x) for x in (50.0, 0, 10 * 16 / 17, 1e-7, 1234.5, 2 / 3)] == \
        ["50", "0", "9.41", "0", "1234.5", "0.67"]


def test_options_mistakes_are_one_line(tmp_path, capsys):
    (tmp_path / "subs" / "bob").mkdir(parents=True)
    (tmp_path / "roster.csv").write_text("submission,email\nbob,b@x\nbob,c@x\n")
    base = [str(tmp_path / "subs"), "--out", str(tmp_path / "out")]
    cases = [(["--weights", "1=10"], "--weights and --assignment shape canvas.csv"),
             (["--roster", str(tmp_path / "missing.csv")], "missing.csv: No such file"),
             (["--roster", str(tmp_path / "roster.csv")], 'line 3: the submission "bob"'),
             (["--roster", str(tmp_path / "roster.csv"), "--weights", "9=1"], "no stage 9"),
             (["--regrade", "bobb"], "--regrade bobb: no submission of that name in "
                                     "SUBMISSIONS; did you mean bob?")]
    for args, phrase in cases:
        code = batch.main(base + args)
        stderr = capsys.readouterr().err
        assert code == 2 and phrase in stderr and len(stderr.strip().splitlines()) == 1, \
            (args, stderr)
    assert not (tmp_path / "out").exists(), "nothing was written, nothing graded"


# --- report.html at every class size ---------------------------------------------------------

def fake_results(stage_checks: dict, failed: set) -> dict:
    """A graded student's results: stage -> number of checks (2 points each), and the
    checks ("1.3") they failed."""
    tests = [{"number": "%s.%d" % (stage[0], n), "name": "%s.%d Check %d" % (stage[0], n, n),
              "score": 0 if "%s.%d" % (stage[0], n) in failed else 2, "max_score": 2,
              "status": "failed" if "%s.%d" % (stage[0], n) in failed else "passed",
              "output": "", "tags": [stage]}
             for stage, count in stage_checks.items() for n in range(1, count + 1)]
    return {"score": sum(t["score"] for t in tests),
            "max_score": sum(t["max_score"] for t in tests), "tests": tests}


def page_for(students: int, stage_checks: dict, tmp_path) -> str:
    rows = []
    for i in range(students):
        failed = {"%s.%d" % (s[0], n) for s, count in stage_checks.items()
                  for n in range(1, count + 1) if (i * 7 + n * 3) % (n + 2) == 0}
        rows.append(Row("s%03d" % i, "s%03d" % i, "graded", 1.0,
                              fake_results(stage_checks, failed)))
    rows.append(Row("late", "late", "no submission", 0.0, None, "Nothing"))
    options = batch.Options(tmp_path, tmp_path, 1, 300, False, list(stage_checks), None)
    return batch_page.report(rows, options)


class Svg(html.parser.HTMLParser):
    """Each chart's buckets: (x, label) of its labels under the bars, and its bars' titles."""

    def __init__(self):
        super().__init__()
        self.charts, self.inside = [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "svg":
            self.charts.append({"labels": [], "titles": [], "width": float(attrs["width"])})
        elif tag == "text" and attrs.get("class") == "bucket":
            self.inside = ("labels", float(attrs["x"]), float(attrs["font-size"]))
        elif tag == "title" and self.charts and not self.charts[-1].get("closed"):
            self.inside = ("titles",)

    def handle_endtag(self, tag):
        if tag == "svg":
            self.charts[-1]["closed"] = True

    def handle_data(self, data):
        if self.inside and self.inside[0] == "labels":
            self.charts[-1]["labels"].append((self.inside[1], self.inside[2], data))
        elif self.inside:
            self.charts[-1]["titles"].append(data)
        self.inside = None


@pytest.mark.parametrize("students", [1, 9, 300])
def test_histograms_read_at_every_class_size(tmp_path, students):
    """Every bar has a label, no two labels touch (a digit or dash of a sans-serif font is
    about 0.56 em wide), the bars cover 0 to the maximum, and count every student."""
    stage_checks = {"1_echo": 12, "2_naming": 9, "3_messaging": 30, "4_exit": 4}
    svg = Svg()
    svg.feed(page_for(students, stage_checks, tmp_path))
    maxima = [2 * n for n in stage_checks.values()] + [2 * sum(stage_checks.values())]
    assert len(svg.charts) == len(maxima)
    for chart, maximum in zip(svg.charts, maxima):
        labels = chart["labels"]
        assert 1 <= len(labels) <= 10, labels
        for (x1, size, text1), (x2, _, text2) in zip(labels, labels[1:]):
            room = x2 - x1
            assert room >= 0.56 * size * (len(text1) + len(text2)) / 2 + 3, \
                "labels %r and %r overlap (%.0f px apart)" % (text1, text2, room)
        assert labels[-1][0] + 0.56 * labels[-1][1] * len(labels[-1][2]) / 2 <= chart["width"]
        ranges = [tuple(int(p) for p in text.split("–")) for _, _, text in labels]
        assert ranges[0][0] == 0 and ranges[-1][-1] == maximum, ranges
        for before, after in zip(ranges, ranges[1:]):
            assert after[0] == before[-1] + 1, "a gap or overlap between buckets: %s" % ranges
        counted = sum(int(re.search(r": (\d+) student", t).group(1)) for t in chart["titles"])
        assert counted == students, "the bars count %d of %d students" % (counted, students)


def test_grid_one_table_per_stage(tmp_path):
    """The students × checks grid: a table per stage with only that stage's checks, the
    most failed first, and every student a row in each."""
    stage_checks = {"1_echo": 20, "2_naming": 26, "3_messaging": 24, "4_exit": 25}
    page = page_for(9, stage_checks, tmp_path)
    tables = re.findall(r'<table class="grid" data-stage="([^"]+)">(.*?)</table>', page, re.S)
    assert [stage for stage, _ in tables] == STAGES
    for stage, table in tables:
        numbers = re.findall(r'<th class="check" title="[^"]*">([^<]+)</th>', table)
        assert sorted(numbers) == sorted("%s.%d" % (stage[0], n)
                                         for n in range(1, stage_checks[stage] + 1))
        rows = re.findall(r"<tr><td class=\"name\".*?</tr>", table, re.S)
        assert len(rows) == 10, "9 graded and 1 not, a row each"
        marks = [re.findall(r'<td class="(?:pass|fail|none)"[^>]*>(.)</td>', r) for r in rows]
        assert all(len(m) == len(numbers) for m in marks)
        failures = [sum(1 for m in marks if m[i] == "✗") for i in range(len(numbers))]
        assert failures == sorted(failures, reverse=True), "most failed first: %s" % failures
        assert any(f for f in failures), "the fake class fails some checks"
        late = next(r for r in rows if ">late<" in r)
        assert ">no submission<" in late and "✓" not in late and "✗" not in late


def test_exports_weigh_each_stage_and_leave_out_the_unidentifiable(tmp_path):
    """write_exports in this process, on two stages: a named stage scaled to its worth, the
    other at the grader's points; Moodle's column is the identifier most students have, and a
    total above 100 is warned of."""
    path = tmp_path / "roster.csv"
    path.write_text("submission,name,sis_user_id,idnumber,username\n"
                    "ann,Ann,S1,,ann1\nbob,Bob,,77,bob1\neve,,S3,,\n", encoding="utf-8")
    roster = gradebook.read_roster(path)
    checks = {"1_echo": 3, "2_naming": 2}           # 6 and 4 points
    ann = Row("ann", "ann", "graded", 1.0, fake_results(checks, {"1.1"}))
    bob = Row("bob", "bob", "timeout", 300.0, None, "stopped")
    eve = Row("eve", "eve", "graded", 1.0, fake_results(checks, set()))
    rows = {1 + n: row for n, row in enumerate([ann, bob, eve], 1)}
    scale = gradebook.scale_for([ann, bob, eve], list(checks), {"1_echo": 90, "4_exit": 5})
    assert scale.possible() == 94, "1_echo worth 90, 2_naming its own 4, 4_exit not graded"
    done = gradebook.write_exports(tmp_path, roster, rows, scale, "Lab, final")
    assignment, possible, students = canvas_reads(tmp_path / "canvas.csv")
    assert (assignment, possible) == ("Lab, final", 94)
    assert students == {"Ann": (("", "S1", "", ""), 64.0), "Bob": (("", "", "", ""), 0.0),
                        "": (("", "S3", "", ""), 94.0)}, "90 x 4/6 + 4 = 64"
    header, grades = moodle_reads(tmp_path / "moodle.csv")
    assert header == ["Username", "Lab, final"] and grades == {"ann1": 64, "bob1": 0}
    notes = "\n".join(done.notes)
    assert "moodle.csv leaves out 1 student with no username" in notes and "eve (line 4)" in notes
    scale = gradebook.scale_for([ann, bob, eve], list(checks), {"1_echo": 100})
    done = gradebook.write_exports(tmp_path, roster, rows, scale, "Lab")
    assert any("moodle.csv: grades go up to 104, and Moodle refuses grades above 100" in n
               for n in done.notes), done.notes
    # A roster Moodle can't use: no moodle.csv (the last one is removed), and the reason.
    path.write_text("submission,sis_login_id\nann,alee\n", encoding="utf-8")
    done = gradebook.write_exports(tmp_path, gradebook.read_roster(path), {2: ann}, scale, "Lab")
    assert done.files == [tmp_path / "canvas.csv"] and not (tmp_path / "moodle.csv").exists()
    assert any("moodle.csv: not written: the roster has no email, idnumber or username" in n
               for n in done.notes), done.notes
