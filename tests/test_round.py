"""A teacher's round without surprises: what `batch`, `pytest grader --impl`, the
report and the handout give a teacher who grades a class as the guide says.

* The hand-in as given: a submission whose stage folders are at its top, with a
  server that never answers a second client, is graded by `batch` and by
  `pytest grader --impl`, each from a folder of the teacher's; every path that
  names the student's server names it as the teacher gave it (never the batch's
  private `impl/`, never a folder name alone that leads nowhere).
* A regrade keeps the exports: `--roster --weights --assignment`, then `--roster
  --regrade NAME` alone, then a late submission with no option at all: canvas.csv
  keeps its column and its points possible; `--no-roster` drops them.
* report.html: the checks someone failed in the table, the others folded away in a
  <details>; a 1,000-character line wraps.
* grades.csv in casefold() order; a handout .zip is rw-r--r--; an empty submission is
  told the stages its assignment grades; teachers.md links to how to add a check.
"""

import html.parser
import json
import os
import re
import stat
import sys
import zipfile
from pathlib import Path

import pytest

from gradekit import KIT, LINUX, POSIX, STAGES, run_bounded, stage_maximum
from test_batch import read_csv, run_batch, stage_folder

sys.path.insert(0, str(KIT))
from grader import catalog  # noqa: E402
from grader.teach import batch, batch_page, submissions  # noqa: E402
from grader.teach.rows import Row  # noqa: E402

FIRST = STAGES[0]
POINTS, CHECKS = stage_maximum(FIRST)

# A stage-1 server that serves one client at a time: it blocks in recv() on the first,
# so a second client's messages wait, and the grader asks it where it is.
ONE_AT_A_TIME = """\
import argparse, socket
parser = argparse.ArgumentParser()
parser.add_argument("--host", default="0.0.0.0")
parser.add_argument("--port", type=int, default=7777)
args = parser.parse_args()
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((args.host, args.port))
server.listen()
while True:
    client, _ = server.accept()
    while True:
        data = client.recv(4096)
        if not data:
            break
        client.sendall(data)
    client.close()
"""


def one_at_a_time(folder: Path) -> None:
    stage_folder(folder / FIRST)
    (folder / FIRST / "chat_server.py").write_text(ONE_AT_A_TIME, encoding="utf-8")


def kit_command(*args, cwd: Path, limit: float = 180) -> tuple[int, str, str]:
    """`python -m ...` of the kit, run from `cwd` (a teacher's own folder)."""
    env = dict(os.environ, PYTHONPATH=str(KIT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return run_bounded([sys.executable, *map(str, args)], cwd, limit, env=env)


def server_paths(text: str, cwd: Path) -> set[str]:
    """Every path in `text` that ends in the stage's chat_server.py, as seen from `cwd`
    (an absolute one, as a traceback of the server names it, made relative to `cwd`),
    with / between its folders, whichever the system wrote."""
    found = re.findall(r"[^\s'\"(]*%s[/\\]chat_server\.py" % FIRST, text)
    return {(os.path.relpath(path, cwd) if os.path.isabs(path) else path).replace("\\", "/")
            for path in found}


# --- the hand-in as given -----------------------------------------------------------------

def test_batch_names_the_hand_in_as_given(tmp_path):
    one_at_a_time(tmp_path / "subs" / "frank")
    code, out, err = kit_command("-m", "grader", "batch", "subs", "--out", "grades",
                                 "--stage", 1, "--jobs", 1, cwd=tmp_path)
    assert code == 0, err
    given = "subs/frank/%s/chat_server.py" % FIRST
    feedback = (tmp_path / "grades" / "frank" / "feedback.txt").read_text(encoding="utf-8")
    results = json.loads((tmp_path / "grades" / "frank" / "results.json").read_text("utf-8"))
    outputs = "\n".join(t["output"] for t in results["tests"])
    if LINUX:
        assert "Where:" in outputs and "waiting in recv()" in outputs, \
            "the server was never asked where it waits: that line names its file too"
    for name, text in (("feedback.txt", feedback), ("results.json", outputs)):
        assert server_paths(text, tmp_path) == {given}, \
            "%s names %s" % (name, server_paths(text, tmp_path))


def test_impl_names_the_folder_as_given(tmp_path):
    one_at_a_time(tmp_path / "subs" / "frank")
    code, out, err = kit_command("-m", "pytest", KIT / "grader", "--impl", "subs/frank/",
                                 "--stage", 1, "--results", "frank.json", "-q",
                                 "-p", "no:cacheprovider", cwd=tmp_path)
    assert code == 1, out + err
    given = "subs/frank/%s/chat_server.py" % FIRST
    assert (tmp_path / given).is_file()
    assert server_paths(out, tmp_path) == {given}, server_paths(out, tmp_path)
    results = json.loads((tmp_path / "frank.json").read_text(encoding="utf-8"))
    outputs = "\n".join(t["output"] for t in results["tests"])
    assert server_paths(outputs, tmp_path) == {given}, server_paths(outputs, tmp_path)
    assert "Where:" in outputs or not LINUX


def test_the_short_names_and_only_they_are_spelled_as_given():
    from grader.naming import given, spelled
    assert spelled("subs/./frank/") == os.path.normpath("subs/frank") and spelled(None) is None
    text = ("(started frank/%s/chat_server.py --port 1)\nat frank/%s/chat_client.py line 3\n"
            'File "/srv/frank/%s/chat_server.py", line 2\nfrankly/%s/x.py frank/notes/x.py'
            % (FIRST, FIRST, FIRST, FIRST))
    if os.sep != "/":
        return   # the replacement below is spelled the POSIX way
    assert given(text, "frank", "subs/frank") == text.replace(
        "(started frank/", "(started subs/frank/").replace("at frank/", "at subs/frank/")
    assert given(text, "frank", None) == given(text, "frank", "frank") == text


# --- a regrade keeps the exports' settings ------------------------------------------------

ROSTER = ("submission,name,email\nann,\"Lee, Ann\",ann@uni.example\n"
          "bob,\"Brown, Bob\",bob@uni.example\ncarol,\"Cruz, Carol\",carol@uni.example\n")


def canvas(out: Path) -> tuple[list[str], list[str], dict]:
    rows = read_csv(out / "canvas.csv")
    return rows[0], rows[1], {r[0]: r[-1] for r in rows[2:]}


def test_a_regrade_keeps_the_exports(tmp_path):
    subs = tmp_path / "subs"
    stage_folder(subs / "ann" / FIRST)
    stage_folder(subs / "bob" / FIRST)
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    out = tmp_path / "out"
    code, stdout, stderr, _ = run_batch(subs, "--out", out, "--stage", 1, "--jobs", 2,
                                        "--roster", roster, "--weights", "1=100",
                                        "--assignment", "Chat server (final)")
    assert code == 0, stderr
    first = canvas(out)
    assert first[0][-1] == "Chat server (final)" and first[1][-1] == "100", first
    assert first[2]["Lee, Ann"] == "100" and first[2]["Cruz, Carol"] == "0"

    # The guide's regrade: --roster and --regrade, nothing else.
    code, stdout, stderr, _ = run_batch(subs, "--out", out, "--roster", roster,
                                        "--regrade", "bob")
    assert code == 0, stderr
    assert "1 to grade" in stderr, "--regrade bob graded more than bob: %s" % stderr
    assert "--weights 1=100" in stderr and '--assignment "Chat server (final)"' in stderr \
        and "--stage %s" % FIRST in stderr, "the kept settings are not said: %s" % stderr
    assert "--timeout" not in stderr, "the default time limit is said as if it were given"
    assert canvas(out) == first, "the regrade changed canvas.csv"

    # A late submission, and no option at all: graded on the same stage, same exports.
    stage_folder(subs / "carol" / FIRST)
    code, stdout, stderr, _ = run_batch(subs, "--out", out)
    assert code == 0, stderr
    assert "1 to grade" in stderr, stderr
    header, possible, grades = canvas(out)
    assert (header, possible) == first[:2] and grades["Cruz, Carol"] == "100", grades
    rows = {r[0]: r for r in read_csv(out / "grades.csv")[1:]}
    assert rows["carol"][1 + STAGES.index(FIRST)] == str(POINTS)
    assert all(rows["carol"][1 + STAGES.index(s)] == "" for s in STAGES if s != FIRST)

    # Told otherwise: new weights replace the kept ones; --no-roster drops the exports.
    code, stdout, stderr, _ = run_batch(subs, "--out", out, "--weights", "1=40")
    assert code == 0, stderr
    assert canvas(out)[1][-1] == "40" and canvas(out)[0][-1] == "Chat server (final)"
    code, stdout, stderr, _ = run_batch(subs, "--out", out, "--no-roster")
    assert code == 0 and "0 to grade" in stderr, stderr
    assert not (out / "canvas.csv").exists() and not (out / "moodle.csv").exists()
    code, stdout, stderr, _ = run_batch(subs, "--out", out)
    assert code == 0 and not (out / "canvas.csv").exists(), "--no-roster was not kept"


def test_a_kept_roster_that_is_gone_is_one_line(tmp_path):
    (tmp_path / "subs").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / batch.SETTINGS_FILE).write_text(json.dumps(
        {"stages": [FIRST], "timeout": 60, "roster": str(tmp_path / "gone.csv"),
         "weights": None, "assignment": None}), encoding="utf-8")
    code, stdout, stderr, _ = run_batch(tmp_path / "subs", "--out", out)
    assert code == 2 and "gone.csv, is gone" in stderr and "Traceback" not in stderr, stderr


# --- report.html ----------------------------------------------------------------------------

class Report(html.parser.HTMLParser):
    """The checks table's rows outside and inside <details>, and the page's CSS."""

    def __init__(self):
        super().__init__()
        self.section, self.details, self.style = "", 0, ""
        self.in_style = self.in_h2 = False
        self.checks = {"shown": [], "folded": []}
        self.cell = None

    def handle_starttag(self, tag, attrs):
        if tag == "style":
            self.in_style = True
        elif tag == "h2":
            self.in_h2, self.section = True, ""
        elif tag == "details":
            self.details += 1
        elif tag == "tr" and self.section.startswith("Checks"):
            self.cell = []
        elif tag == "td" and self.cell is not None:
            self.cell.append("")

    def handle_endtag(self, tag):
        if tag == "style":
            self.in_style = False
        elif tag == "h2":
            self.in_h2 = False
        elif tag == "details":
            self.details -= 1
        elif tag == "tr" and self.cell:
            self.checks["folded" if self.details else "shown"].append(self.cell[0])
            self.cell = None

    def handle_data(self, data):
        if self.in_style:
            self.style += data
        elif self.in_h2:
            self.section += data
        elif self.cell:
            self.cell[-1] += data


def test_report_folds_the_checks_nobody_failed_and_wraps_long_lines(tmp_path):
    checks = catalog.checks([FIRST])
    assert len(checks) >= 3

    def results(failed: set, output: str = "") -> dict:
        tests = [{"number": c["number"], "name": "%s %s" % (c["number"], c["title"]),
                  "score": 0 if c["number"] in failed else c["max_score"],
                  "max_score": c["max_score"], "tags": [FIRST], "output": output,
                  "status": "failed" if c["number"] in failed else "passed"} for c in checks]
        return {"score": sum(t["score"] for t in tests),
                "max_score": sum(t["max_score"] for t in tests), "tests": tests}

    failed_once, failed_twice = checks[-1]["number"], checks[1]["number"]
    long_line = "x" * 1000
    rows = [Row("ann", "ann", "graded", 1.0, results({failed_twice})),
            Row("bob", "bob", "graded", 1.0,
                      results({failed_twice, failed_once}, "Got: %s" % long_line))]
    options = batch.Options(tmp_path, tmp_path, 1, 300, False, [FIRST], None)
    page = Report()
    page.feed(batch_page.report(rows, options))
    assert page.checks["shown"] == [failed_twice, failed_once], \
        "the table shows the checks someone failed, most failed first"
    assert sorted(page.checks["folded"]) == sorted(
        c["number"] for c in checks if c["number"] not in (failed_once, failed_twice))
    assert long_line in batch_page.report(rows, options), "the long line is shown"
    pre = re.search(r"pre\s*\{([^}]*)\}", page.style).group(1)
    assert "white-space: pre-wrap" in pre and "overflow-wrap: anywhere" in pre, pre


# --- the smaller ones -----------------------------------------------------------------------

def test_grades_csv_in_casefold_order(tmp_path):
    names = ["Zoë Ünal", "Hill, Heidi", "alice", "bob", "Émile", "ZED"]
    rows = [Row(n, n, "no submission", 0.0, None, "none") for n in names]
    rows.sort(key=batch.student_order)
    batch.write_grades(tmp_path / "grades.csv", rows, [FIRST])
    written = [r[0] for r in read_csv(tmp_path / "grades.csv")[1:]]
    assert written == sorted(names, key=str.casefold) == [
        "alice", "bob", "Hill, Heidi", "ZED", "Zoë Ünal", "Émile"], written


@pytest.mark.skipif(not POSIX, reason="file modes are POSIX's")
def test_a_handout_zip_is_rw_r__r__(tmp_path):
    code, out, err = kit_command("-m", "grader", "handout", "--out", tmp_path / "week1.zip",
                                 "--stages", 1, cwd=tmp_path)
    assert code == 0, err
    assert stat.S_IMODE((tmp_path / "week1.zip").stat().st_mode) == 0o644
    with zipfile.ZipFile(tmp_path / "week1.zip") as zf:
        modes = {stat.S_IMODE(i.external_attr >> 16) for i in zf.infolist()}
        zf.extractall(tmp_path / "unpacked")
    assert modes == {0o644}, modes
    unpacked = tmp_path / "unpacked" / "week1" / "protocol.py"
    assert stat.S_IMODE(unpacked.stat().st_mode) & 0o044 == 0o044, "others cannot read it"


@pytest.mark.parametrize("graded", [[STAGES[1]], [STAGES[0], STAGES[2]], list(STAGES)])
def test_an_empty_submission_is_told_the_stages_graded(tmp_path, graded):
    (tmp_path / "empty").mkdir()
    with pytest.raises(submissions.SubmissionProblem) as problem:
        submissions.prepare(tmp_path / "empty", graded)
    message = problem.value.message
    assert "The submission is empty" in message
    assert [s for s in STAGES if s in message] == graded, message


def test_teachers_guide_links_to_adding_a_check():
    guide = (KIT / "docs" / "teachers.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((developing\.md#[^)]+)\)", guide)
    assert "developing.md#adding-a-check" in links, links
    developing = (KIT / "docs" / "developing.md").read_text(encoding="utf-8")
    assert re.search(r"^#+ Adding a check$", developing, re.M), "the section is gone"
