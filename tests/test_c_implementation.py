"""Another language: a stage-1 server and client written in C, graded by the real grader.

tests/impls/c_echo/1_echo holds chat_server.c and chat_client.c (select(),
non-blocking sockets) and the two launchers a teacher of a C class hands out:
chat_server.py and chat_client.py, which exec the program built next to them
(docs/teachers.md § Another language). Here the folder is copied, built with
the system's C compiler, and graded on stage 1 only, as a class's submission
by `python -m grader batch` (as the guide's recipe does): full marks. Built with
-DPLANT_PARTIAL_HEADER, the server throws away what is left of a message that
arrived in pieces (it assumes recv() returns whole messages): check 1.3 (one
byte at a time) must catch it, with a failure that explains it.

The grader copies what it grades (batch, into a private folder; as root, into
one the programs' own user can read): the built programs must run from each
copy (the launcher finds them next to itself, nothing outside; the copies keep
them executable).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gradekit import IMPLS, KIT, WINDOWS, grade, stage_maximum, unexplained_failures

SOURCE = IMPLS / "c_echo"
COMPILER = next((shutil.which(name) for name in ("cc", "gcc", "clang") if shutil.which(name)),
                None)
pytestmark = [
    pytest.mark.skipif(WINDOWS, reason="the C example uses POSIX sockets and select() on "
                                       "standard input"),
    pytest.mark.skipif(COMPILER is None, reason="no C compiler: cc, gcc and clang not found "
                                                "on the PATH"),
]
PROGRAMS = ["chat_server", "chat_client"]


def build(into: Path, *flags: str) -> Path:
    """A copy of impls/c_echo in `into`, its two programs built next to their launchers."""
    shutil.copytree(SOURCE, into, ignore=shutil.ignore_patterns(*PROGRAMS, "__pycache__"))
    os.chmod(into, 0o700)   # others can't read it: as root, the grader makes a copy
    stage = into / "1_echo"
    for program in PROGRAMS:
        done = subprocess.run([COMPILER, "-O2", "-Wall", *flags, "-o", str(stage / program),
                               str(stage / (program + ".c"))],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, "%s did not build:\n%s" % (program, done.stderr)
    return into


def batch(submissions: Path, out: Path) -> dict:
    """`python -m grader batch SUBMISSIONS --out OUT --stage 1`, as docs/teachers.md
    runs a class of C submissions: each student's results.json."""
    done = subprocess.run([sys.executable, "-m", "grader", "batch", str(submissions), "--out",
                           str(out), "--stage", "1", "--jobs", "1"], cwd=KIT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return {p.name: json.loads((p / "results.json").read_text(encoding="utf-8"))
            for p in out.iterdir() if (p / "results.json").is_file()}


@pytest.fixture(scope="module")
def gradings(tmp_path_factory):
    """(the correct build graded by batch, as a student's copy of the kit; the planted
    build graded by `pytest grader`), stage 1 only, both at once."""
    tmp = tmp_path_factory.mktemp("c")
    (tmp / "submissions" / "ada").mkdir(parents=True)
    build(tmp / "submissions" / "ada" / "stages")
    planted = build(tmp / "c_planted", "-DPLANT_PARTIAL_HEADER")
    with ThreadPoolExecutor(max_workers=2) as pool:
        by_batch = pool.submit(batch, tmp / "submissions", tmp / "grades")
        run = pool.submit(grade, planted, "--stage", "1")
        return by_batch.result()["ada"], run.result()


def test_a_c_server_and_client_score_full_marks(gradings, report):
    results = gradings[0]
    failed = {t["name"]: t["output"][:800] for t in results["tests"] if t["status"] != "passed"}
    assert not failed, "the C implementation lost points: %s" % failed
    assert results["score"] == results["max_score"] == stage_maximum("1_echo")[0]
    assert len(results["tests"]) == stage_maximum("1_echo")[1]
    report("C implementation, stage 1, through batch: %d/%d"
           % (results["score"], results["max_score"]))


def test_a_planted_c_mistake_is_caught_and_explained(gradings):
    run = gradings[1]
    failed = run.failed()
    assert "1.3" in failed, "a server that loses partial messages passed 1.3:\n" + run.output
    assert set(failed) <= {"1.3", "1.5", "1.9"}, failed   # only checks that send in pieces
    text = run.output_of("1.3")
    assert "one byte at a time" in text and "Got:      nothing" in text, text
    assert "did you read the header with a single recv()?" in text, text
    assert not unexplained_failures(run), unexplained_failures(run)


def test_the_launchers_are_self_contained_and_shown_in_the_guide():
    """Each launcher runs the program next to it and names nothing outside its folder;
    docs/teachers.md shows the server's launcher as it is."""
    guide = (KIT / "docs" / "teachers.md").read_text(encoding="utf-8")
    for program in PROGRAMS:
        launcher = (SOURCE / "1_echo" / (program + ".py")).read_text(encoding="utf-8")
        assert 'os.path.dirname(os.path.abspath(__file__)), "%s"' % program in launcher
        assert "os.execv(program, [program] + sys.argv[1:])" in launcher
        assert not re.search(r"\.\.|parents?\b|solutions", launcher), launcher
    code = (SOURCE / "1_echo" / "chat_server.py").read_text(encoding="utf-8")
    body = code.split('"""', 2)[2].lstrip("\n")   # without its docstring
    assert body in guide, "docs/teachers.md does not show the launcher as it is:\n" + body


@pytest.mark.skipif(WINDOWS, reason="Windows has no execute bit")
def test_the_copies_keep_the_execute_bit_alone(tmp_path):
    """batch's copy of a submission (and its readable form) keeps a built program
    executable, as mode 755: never its set-user-id bit, which a copy made by root
    would otherwise turn into a program that runs as root."""
    import stat
    sys.path.insert(0, str(KIT))
    from grader.teach.submissions import Budget, copy_tree, make_readable
    source = tmp_path / "source"
    source.mkdir()
    (source / "chat_server").write_bytes(b"\x7fELF")
    (source / "chat_server.py").write_text("print()\n")
    os.chmod(source / "chat_server", 0o4755)
    os.chmod(source / "chat_server.py", 0o600)
    copy = tmp_path / "copy"
    copy_tree(source, copy, Budget())
    make_readable(copy)
    assert stat.S_IMODE(os.stat(copy / "chat_server").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(copy / "chat_server.py").st_mode) == 0o644
