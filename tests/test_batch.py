"""`python -m grader batch`: a small class in every layout, graded for real.

The class: correct submissions in three layouts (bare stage folders with
protocol.py; a zipped, wrapped copy of the kit under a Hebrew name; a wrapped
folder without protocol.py that is buggy and prints `<script>`), and the
submissions that can't be graded (empty, a .zip that is not one, a zip slip,
two copies of the kit, no stage folder under a name full of HTML, a loose
file). It is graded with --jobs 2 on stage 1 and judged by the files the
command writes. Then a late, hanging submission arrives: the second run
grades only it, stops it at its time limit, and rewrites every row.
"""

import csv
import html.parser
import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from gradekit import (KIT, POSIX, STAGES, _kill_group, left_running, processes_mentioning,
                      stage_maximum, started_by)

STAGE1_POINTS, STAGE1_CHECKS = stage_maximum("1_echo")   # as the grader declares them
sys.path.insert(0, str(KIT))
from grader.teach import batch, submissions  # noqa: E402
from grader.teach.submissions import SubmissionProblem, prepare  # noqa: E402

SOLUTION = KIT / "solutions" / "1_echo"
GRADES_HEADER = ["student", *STAGES, "total",
                 "max_score", "status", "seconds"]
CHECKS_HEADER = ["student", "check", "title", "stage", "score", "max_score", "status"]
# A student's name that would be markup if the report did not escape it. Windows
# forbids < and > in a file's name: there it carries quotes and an ampersand instead.
HTML_NAME = "<img src=x onerror=alert(1)>" if POSIX else "x' onerror='alert(1) & co"
HTML_FOLDER = "_img src=x onerror=alert(1)_" if POSIX else HTML_NAME   # its feedback's
HEBREW = "שרה כהן"
SCRIPT = "<script>alert('pwned')</script>"
HANGS = "import time\ntime.sleep(600)   # never listens, never connects\n"
# Every program this module's batches start carries this in its environment, so the
# leftover check ignores other copies of the kit's tests running on the machine.
RUN_MARKER = ("CHATKIT_BATCH_RUN", str(os.getpid()))


def run_batch(*args, limit: float = 120):
    """Run `python -m grader batch ...` as its own process group, within `limit` seconds."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "grader", "batch", *map(str, args)],
                            cwd=KIT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=POSIX,
                            env=dict(os.environ, **dict([RUN_MARKER])))
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError("batch did not finish within %d s:\n%s" % (limit, err.decode()))
    return (proc.returncode, out.decode("utf-8"), err.decode("utf-8"),
            time.monotonic() - started)


def stage_folder(target: Path, buggy: bool = False) -> None:
    shutil.copytree(SOLUTION, target, ignore=shutil.ignore_patterns("__pycache__"))
    if buggy:   # empty payloads are not echoed (check 1.2), and the server prints HTML
        server = target / "chat_server.py"
        code = server.read_text(encoding="utf-8")
        planted = code.replace(
            "    server.queue_message(client, payload)\n\n\n",
            "    if payload:\n        server.queue_message(client, payload)\n\n\n", 1)
        importing = next(line for line in planted.splitlines(keepends=True)
                         if line.startswith("import server"))
        planted = planted.replace(
            importing, importing + "print(%r, file=sys.stderr, flush=True)\n" % SCRIPT, 1)
        assert planted.count("if payload:") == 1 and SCRIPT in planted, "the bug was not planted"
        server.write_text(planted, encoding="utf-8")


def zip_folder(folder: Path, archive: Path, extra: dict | None = None) -> None:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)


def make_class(root: Path) -> Path:
    subs = root / "submissions"
    subs.mkdir()
    # Zoë: the stage folder and protocol.py, at the top.
    stage_folder(subs / "Zoë" / "1_echo")
    shutil.copy(KIT / "protocol.py", subs / "Zoë" / "protocol.py")
    # שרה כהן.zip: a whole copy of the kit in one wrapping folder, with junk around it.
    kit = root / "sara" / "chat-kit-main"
    stage_folder(kit / "stages" / "1_echo")
    stage_folder(kit / "solutions" / "1_echo", buggy=True)   # never graded: not theirs
    shutil.copy(KIT / "protocol.py", kit / "protocol.py")
    (kit / "README.md").write_text("my chat kit\n", encoding="utf-8")
    zip_folder(root / "sara", subs / (HEBREW + ".zip"),
               {"__MACOSX/chat-kit-main/._protocol.py": b"\0\0junk",
                "chat-kit-main/.git/config": b"[core]\n"})
    # bob: the stage folder inside one wrapping folder, no protocol.py, one planted bug.
    stage_folder(subs / "bob" / "my work" / "1_echo", buggy=True)
    # Not gradable, each for its own reason.
    (subs / "emma").mkdir()
    (subs / "emma" / ".DS_Store").write_bytes(b"\0")
    (subs / "frank.zip").write_text("this is not a zip\n")
    with zipfile.ZipFile(subs / "gina.zip", "w") as zf:
        zf.writestr("1_echo/chat_server.py", "print('hi')\n")
        zf.writestr("../../escaped.py", "print('zip slip')\n")
    for version in ("v1", "v2"):
        stage_folder(subs / "hank" / version / "stages" / "1_echo")
    (subs / HTML_NAME).mkdir()
    (subs / HTML_NAME / "notes.txt").write_text("I did not finish\n")
    (subs / "notes.txt").write_text("a loose file\n")
    return subs


def read_csv(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "%s has no UTF-8 byte-order mark" % path.name
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


class Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            assert not name.startswith("on"), "an event handler in report.html: %s" % name


@pytest.fixture(scope="module")
def graded(tmp_path_factory, report):
    root = tmp_path_factory.mktemp("class")
    subs = make_class(root)
    out = root / "out"
    code, stdout, stderr, seconds = run_batch(subs, "--out", out, "--jobs", 2, "--stage", 1,
                                              "--timeout", 120)
    assert code == 0, "batch exited %s:\n%s\n%s" % (code, stdout, stderr)
    report("batch: a class of %d (3 graded on stage 1, the others not gradable), --jobs 2: "
           "%.1f s" % (len(list(subs.iterdir())), seconds))
    return root, subs, out, stdout, stderr


def rows_by_student(out: Path) -> dict[str, dict]:
    rows = read_csv(out / "grades.csv")
    assert rows[0] == GRADES_HEADER
    return {r[0]: dict(zip(GRADES_HEADER, r)) for r in rows[1:]}


def test_one_row_per_student_sorted_with_status(graded):
    root, subs, out, stdout, stderr = graded
    rows = read_csv(out / "grades.csv")
    students = [r[0] for r in rows[1:]]
    expected = sorted(["Zoë", HEBREW, "bob", "emma", "frank", "gina", "hank", HTML_NAME,
                       "notes.txt"], key=lambda name: (name.casefold(), name))
    assert students == expected
    by = rows_by_student(out)
    status = {s: r["status"] for s, r in by.items()}
    assert status == {"Zoë": "graded", HEBREW: "graded", "bob": "graded",
                      "emma": "no submission", "frank": "error", "gina": "error",
                      "hank": "error", HTML_NAME: "error", "notes.txt": "error"}
    for student, row in by.items():
        assert row["2_naming"] == row["3_messaging"] == row["4_exit"] == "", \
            "stages not graded must have empty columns: %s" % row
        assert row["max_score"] == str(STAGE1_POINTS), row
        if row["status"] != "graded":
            assert row["1_echo"] == row["total"] == "0", row
    assert by["Zoë"]["1_echo"] == by["Zoë"]["total"] == str(STAGE1_POINTS)
    assert by[HEBREW]["total"] == str(STAGE1_POINTS)
    assert by["bob"]["total"] == str(STAGE1_POINTS - 1), "bob's bug (check 1.2, 1 point) must cost 1 point"
    assert "Done in" in stdout and "3 graded" in stdout
    assert "[3/3]" in stderr and "left" in stderr, "no progress lines:\n" + stderr


def test_checks_csv_and_results(graded):
    root, subs, out, _, _ = graded
    rows = read_csv(out / "checks.csv")
    assert rows[0] == CHECKS_HEADER
    by = {}
    for r in rows[1:]:
        by.setdefault(r[0], []).append(dict(zip(CHECKS_HEADER, r)))
    assert len(by) == 9 and all(len(checks) == STAGE1_CHECKS for checks in by.values())
    bob_failed = [c["check"] for c in by["bob"] if c["status"] == "failed"]
    assert bob_failed == ["1.2"], bob_failed
    assert {c["status"] for c in by["emma"]} == {"not run"}
    assert all(c["stage"] == "1_echo" for checks in by.values() for c in checks)
    zoe = json.loads((out / "Zoë" / "results.json").read_text(encoding="utf-8"))
    assert zoe["score"] == zoe["max_score"] == STAGE1_POINTS and len(zoe["tests"]) == STAGE1_CHECKS
    feedback = (out / "bob" / "feedback.txt").read_text(encoding="utf-8")
    assert "my work/ (the stage folders)" in feedback and "the kit's protocol.py" in feedback
    assert SCRIPT in feedback and "1_echo          %d / %d" % (STAGE1_POINTS - 1, STAGE1_POINTS) in feedback
    sara = (out / HEBREW / "feedback.txt").read_text(encoding="utf-8")
    assert "chat-kit-main/ (a copy of the kit" in sara


@pytest.mark.parametrize("student, phrase", [
    ("emma", "The submission is empty"),
    ("frank", "not a valid .zip file"),
    ("gina", "leaves the folder"),
    ("hank", "more than one copy of the stage folders: v1/ (a copy of the kit"),
    (HTML_NAME, "No stage folder found"),
    ("notes.txt", "not a folder or a .zip"),
])
def test_not_gradable_says_why(graded, student, phrase):
    root, subs, out, _, _ = graded
    folder = out / (HTML_FOLDER if student == HTML_NAME else student)
    feedback = (folder / "feedback.txt").read_text(encoding="utf-8")
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert phrase in feedback and phrase in results["output"], feedback
    assert results["score"] == 0 and results["tests"] == []


def test_zip_slip_wrote_nothing_outside(graded):
    root, subs, out, _, _ = graded
    assert not list(root.rglob("escaped.py")) and not list(Path("/tmp").glob("escaped.py"))


def test_report_is_escaped_and_self_contained(graded):
    root, subs, out, _, _ = graded
    page = (out / "report.html").read_text(encoding="utf-8")
    parser = Tags()
    parser.feed(page)
    allowed = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "div",
               "figure", "figcaption", "svg", "rect", "text", "line", "table", "tr", "th",
               "td", "span", "a", "pre", "b", "details", "summary"}
    assert parser.tags <= allowed, "unexpected tags: %s" % (parser.tags - allowed)
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in page, \
        "bob's output should be in the report, escaped"
    assert html.escape(HTML_NAME) in page and HTML_NAME not in page
    assert HEBREW in page and "Zoë" in page
    # The grid's columns: the check most students failed (1.2, by bob) first.
    grid = page[page.index("<table class=\"grid\""):]
    assert grid.index(">1.2<") < grid.index(">1.1<")


def test_rerun_grades_only_the_late_submission(graded):
    """A late, hanging submission: the only one graded, stopped at its time limit."""
    root, subs, out, _, _ = graded
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/results.json")}
    rows_before = rows_by_student(out)
    (subs / "dave" / "1_echo").mkdir(parents=True)
    for script in ("chat_server.py", "chat_client.py"):
        (subs / "dave" / "1_echo" / script).write_text(HANGS)
    code, stdout, stderr, seconds = run_batch(subs, "--out", out, "--jobs", 2, "--stage", 1,
                                              "--timeout", 3)
    assert code == 0, stderr
    assert "3 unchanged since the last run" in stderr and "1 to grade" in stderr, stderr
    for path in ("Zoë", HEBREW, "bob"):
        results = out / path / "results.json"
        assert results.stat().st_mtime_ns == before[results], "%s was graded again" % path
    rows = rows_by_student(out)
    assert set(rows) == set(rows_before) | {"dave"}
    for student in rows_before:
        if rows_before[student]["status"] == "graded":
            assert rows[student] == rows_before[student]
    assert rows["dave"]["status"] == "timeout" and rows["dave"]["total"] == "0"
    feedback = (out / "dave" / "feedback.txt").read_text(encoding="utf-8")
    assert "Grading was stopped after 3 s" in feedback
    assert seconds < 30, "a 3 s time limit took %.1f s" % seconds
    left = left_running(lambda: [p for p in processes_mentioning("chatkit-submission-")
                                 if started_by(p, "%s=%s" % RUN_MARKER)])
    assert not left, "programs left running: %s" % left


def test_feedback_names_what_was_submitted(tmp_path):
    """Not the batch's private copies of the submissions, nor the grader's copy of those
    (as root): the folder or .zip the teacher gave, and the path inside it. Each of
    these two students forgot the client."""
    subs = tmp_path / "submissions"
    stage_folder(subs / "ivy" / "1_echo")
    (subs / "ivy" / "1_echo" / "chat_client.py").unlink()
    stage_folder(tmp_path / "jo" / "chat-kit-main" / "stages" / "1_echo")
    (tmp_path / "jo" / "chat-kit-main" / "stages" / "1_echo" / "chat_client.py").unlink()
    zip_folder(tmp_path / "jo", subs / "jo.zip")
    out = tmp_path / "out"
    code, _, stderr, _ = run_batch(subs, "--out", out, "--jobs", 2, "--stage", 1,
                                   "--timeout", 120)
    assert code == 0, stderr
    expected = {"ivy": str(subs / "ivy" / "1_echo" / "chat_client.py"),
                "jo": "%s/chat-kit-main/stages/1_echo/chat_client.py" % (subs / "jo.zip")}
    for student, client in expected.items():
        feedback = (out / student / "feedback.txt").read_text(encoding="utf-8")
        results = (out / student / "results.json").read_text(encoding="utf-8")
        for text in (feedback, results):
            for private in ("chatkit-submission-", "/run/chatkit/copies"):
                assert private not in text, "%s's files name %s" % (student, private)
        basic = next(t for t in json.loads(results)["tests"] if t["number"] == "1.20")
        assert "Expected: a client program at %s" % client in basic["output"], basic["output"]
        assert "Expected: a client program at %s" % client in feedback


def test_a_class_that_all_timed_out_keeps_its_maximum(graded, tmp_path):
    """No grading finished: grades.csv still has the maximum and checks.csv one row per
    student and check, the same checks and points as a real grading (Zoë's above)."""
    _, _, graded_out, _, _ = graded
    subs = tmp_path / "submissions"
    for student in ("ann", "ben"):
        (subs / student / "1_echo").mkdir(parents=True)
        for script in ("chat_server.py", "chat_client.py"):
            (subs / student / "1_echo" / script).write_text(HANGS)
    out = tmp_path / "out"
    code, stdout, stderr, seconds = run_batch(subs, "--out", out, "--jobs", 2, "--stage", 1,
                                              "--timeout", 3)
    assert code == 0, stderr
    rows = rows_by_student(out)
    for student in ("ann", "ben"):
        assert rows[student]["status"] == "timeout" and rows[student]["total"] == "0"
        assert rows[student]["max_score"] == str(STAGE1_POINTS)
        results = json.loads((out / student / "results.json").read_text(encoding="utf-8"))
        assert results["score"] == 0 and results["max_score"] == STAGE1_POINTS
    real = [r[1:4] + ["0", r[5], "not run"] for r in read_csv(graded_out / "checks.csv")[1:]
            if r[0] == "Zoë"]
    assert len(real) == STAGE1_CHECKS
    checks = read_csv(out / "checks.csv")
    assert checks[0] == CHECKS_HEADER
    assert checks[1:] == [["ann", *r] for r in real] + [["ben", *r] for r in real]
    assert sum(int(r[5]) for r in checks[1:]) == 2 * STAGE1_POINTS


def test_bad_input_is_one_line(tmp_path, capsys):
    (tmp_path / "subs").mkdir()
    (tmp_path / "file").write_text("x")
    cases = [([tmp_path / "missing", "--out", tmp_path / "o"], "no such folder"),
             ([tmp_path / "subs", "--out", tmp_path / "file"], "is a file"),
             ([tmp_path / "subs", "--out", tmp_path / "subs" / "o"], "inside SUBMISSIONS"),
             ([tmp_path / "subs", "--out", tmp_path / "o", "--jobs", 0], "--jobs"),
             ([tmp_path / "subs", "--out", tmp_path / "o", "--stage", 9], "no such stage")]
    for args, phrase in cases:
        try:
            code = batch.main([str(a) for a in args])
        except SystemExit as exit:   # argparse's own usage errors
            code = exit.code
        stderr = capsys.readouterr().err
        assert code == 2 and phrase in stderr.strip().splitlines()[-1], (args, stderr)
    # The same through the command line, as a teacher types it: no traceback.
    code, stdout, stderr, _ = run_batch(tmp_path / "missing", "--out", tmp_path / "o", limit=30)
    assert code == 2 and stderr.strip() == "python -m grader batch: no such folder: %s" % (
        tmp_path / "missing")
    code, stdout, stderr, _ = run_batch(tmp_path / "subs", "--out", tmp_path / "o", limit=30)
    assert code == 0 and read_csv(tmp_path / "o" / "grades.csv") == [GRADES_HEADER]


# --- the layouts, without grading (grader/teach/submissions.py in this process) ----------------

def test_layout_private_copy(tmp_path):
    sub = tmp_path / "sub"
    stage_folder(sub / "chat-kit" / "stages" / "1_echo")
    (sub / "chat-kit" / "protocol.py").write_text("# theirs\n")
    prepared = prepare(sub, ["1_echo"])
    try:
        assert (prepared.folder / "protocol.py").read_text() == "# theirs\n"
        assert (prepared.impl / "protocol.py").read_text() == "# theirs\n"
        assert (prepared.impl / "1_echo" / "chat_server.py").is_file()
        first = prepared.fingerprint
    finally:
        prepared.cleanup()
    assert not prepared.folder.exists()
    (sub / "chat-kit" / "stages" / "1_echo" / "chat_server.py").write_text("# changed\n")
    again = prepare(sub, ["1_echo"])
    again.cleanup()
    assert again.fingerprint != first


def test_layout_loose_files_only_for_one_stage(tmp_path):
    for script in ("chat_server.py", "chat_client.py"):
        shutil.copy(SOLUTION / script, tmp_path / script)
    prepared = prepare(tmp_path, ["1_echo"])
    prepared.cleanup()
    assert "the files of stage 1_echo" in prepared.found
    with pytest.raises(SubmissionProblem, match="not in a stage folder"):
        prepare(tmp_path, None)


@pytest.mark.skipif(not POSIX, reason="symbolic links")
def test_layout_symlinks_are_not_followed(tmp_path):
    stage_folder(tmp_path / "1_echo")
    os.symlink("/etc/passwd", tmp_path / "1_echo" / "secret.txt")
    prepared = prepare(tmp_path, ["1_echo"])
    prepared.cleanup()
    assert not (prepared.impl / "1_echo" / "secret.txt").exists()


@pytest.mark.parametrize("members, phrase", [
    ({"/etc/evil.py": b"x", "1_echo/chat_server.py": b"x"}, "leaves the folder"),
    ({"C:\\evil.py": b"x", "1_echo/chat_server.py": b"x"}, "leaves the folder"),
    ({"1_echo/big.bin": bytes(submissions.MAX_BYTES + 1)}, "larger than 50 MB"),
    ({"__MACOSX/._x": b"x", ".git/HEAD": b"x"}, "empty"),
])
def test_layout_unsafe_or_huge_zips_are_refused(tmp_path, members, phrase):
    archive = tmp_path / "s.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(SubmissionProblem, match=phrase):
        prepare(archive, ["1_echo"])


def test_layout_backslashes_in_a_windows_zip(tmp_path):
    archive = tmp_path / "s.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for script in ("chat_server.py", "chat_client.py"):
            zf.writestr("work\\1_echo\\" + script, (SOLUTION / script).read_bytes())
    prepared = prepare(archive, ["1_echo"])
    prepared.cleanup()
    assert prepared.found.startswith("work/")
