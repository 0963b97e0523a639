"""`python -m grader gradescope`: the autograder zip, run as Gradescope runs it.

The zip is built, unpacked into a temporary root laid out like Gradescope's
(/autograder/source, /autograder/submission, /autograder/results), and its
run_autograder is run with AUTOGRADER_ROOT pointing there: on a correct
submission (a GitHub repository made from the handout), an empty one, a
malformed one, a hanging one (stopped at a short time limit), and with the
grader itself missing. Every run must end with a results.json a student can
read.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from gradekit import (KIT, POSIX, STAGES, _kill_group, left_running, processes_mentioning,
                      stage_maximum, started_by)

STAGE1_POINTS, STAGE1_CHECKS = stage_maximum("1_echo")   # as the grader declares them
pytestmark = pytest.mark.skipif(not POSIX, reason="Gradescope runs run_autograder with bash")

HANGS = "import time\ntime.sleep(600)   # never listens, never connects\n"


def build(out: Path, *args) -> list[str]:
    done = subprocess.run([sys.executable, "-m", "grader", "gradescope", "--out", str(out),
                           *args], cwd=KIT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(out) as zf:
        return zf.namelist()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundles")
    stage1 = folder / "autograder.zip"
    names = build(stage1, "--stage", "1", "--timeout", "120")
    quick = folder / "quick.zip"
    build(quick, "--stage", "1", "--timeout", "3")
    return {"names": names, "stage1": stage1, "quick": quick}


def unpack_like_gradescope(bundle: Path, root: Path) -> None:
    """What Gradescope does: the zip into source/, run_autograder copied to the root."""
    source = root / "source"
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(source)
        for info in zf.infolist():
            mode = info.external_attr >> 16
            if mode:
                os.chmod(source / info.filename, stat.S_IMODE(mode))
    shutil.copy2(source / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir()


# Every program this module's autograders start carries this in its environment, so the
# leftover check ignores other copies of the kit's tests running on the machine.
RUN_MARKER = ("CHATKIT_GRADESCOPE_RUN", str(os.getpid()))


def run_autograder(root: Path, limit: float = 180) -> tuple[dict, str, float]:
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), **dict([RUN_MARKER]),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    started = time.monotonic()
    proc = subprocess.Popen([str(root / "run_autograder")], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise AssertionError("run_autograder did not finish within %d s" % limit)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, output.decode()
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    return results, output.decode("utf-8", "replace"), seconds


def test_the_zip_holds_what_gradescope_needs(bundles, tmp_path):
    names = bundles["names"]
    for needed in ("setup.sh", "run_autograder", "autograder.json", "grader/conftest.py",
                   "grader/startup/sitecustomize.py",
                   "grader/teach/submissions.py", "protocol.py", "requirements.txt",
                   "pyproject.toml"):
        assert needed in names
    assert not [n for n in names if n.split("/")[0] in ("solutions", "tests", "stages")]
    with zipfile.ZipFile(bundles["stage1"]) as zf:
        for script in ("setup.sh", "run_autograder"):
            assert zf.getinfo(script).external_attr >> 16 & 0o111, "%s not executable" % script
            (tmp_path / script).write_bytes(zf.read(script))
            syntax = subprocess.run(["bash", "-n", str(tmp_path / script)],
                                    capture_output=True, text=True)
            assert syntax.returncode == 0, syntax.stderr
        setup = zf.read("setup.sh").decode()
        assert "useradd" in setup and "requirements.txt" in setup and "(3, 10)" in setup
        assert json.loads(zf.read("autograder.json")) == {"stages": ["1_echo"], "timeout": 120}


def test_correct_submission_gets_full_marks(bundles, tmp_path, report):
    unpack_like_gradescope(bundles["stage1"], tmp_path)
    repo = tmp_path / "submission"          # a GitHub repository made from the handout
    shutil.copytree(KIT / "solutions" / "1_echo", repo / "stages" / "1_echo")
    shutil.copy(KIT / "protocol.py", repo / "protocol.py")
    (repo / "README.md").write_text("my chat server\n")
    results, output, seconds = run_autograder(tmp_path)
    report("gradescope: run_autograder on a correct submission (stage 1): %.1f s" % seconds)
    assert results["score"] == results["max_score"] == STAGE1_POINTS, results.get("output")
    assert len(results["tests"]) == STAGE1_CHECKS
    assert all(t["status"] == "passed" for t in results["tests"])
    assert "a copy of the kit" in results["output"]
    assert "Your programs ran as" in results["output"]
    assert "1_echo          %d / %d" % (STAGE1_POINTS, STAGE1_POINTS) in results["output"]


def test_feedback_names_the_students_files_as_in_their_repository(bundles, tmp_path):
    """A crash is named at the student's file as their repository holds it
    (stages/1_echo/server.py), never at Gradescope's /autograder/submission/... nor at
    the grader's private copy."""
    unpack_like_gradescope(bundles["stage1"], tmp_path)
    repo = tmp_path / "submission"
    shutil.copytree(KIT / "solutions" / "1_echo", repo / "stages" / "1_echo")
    shutil.copy(KIT / "protocol.py", repo / "protocol.py")
    server = repo / "stages" / "1_echo" / "server.py"
    server.write_text(server.read_text(encoding="utf-8") + "\nraise KeyError('planted')\n",
                      encoding="utf-8")
    results, _, _ = run_autograder(tmp_path)
    failed = [t["output"] for t in results["tests"] if t["status"] == "failed"]
    assert failed, results.get("output")
    assert "KeyError at stages/1_echo/server.py line" in failed[0], failed[0]
    everything = json.dumps(results)
    assert str(tmp_path) not in everything and "/autograder" not in everything


def test_empty_submission_gets_zero_and_why(bundles, tmp_path):
    unpack_like_gradescope(bundles["stage1"], tmp_path)
    results, _, seconds = run_autograder(tmp_path, limit=60)
    assert results["score"] == 0 and results["tests"] == []
    assert results["max_score"] == STAGE1_POINTS   # the bundle's stages, as declared
    assert "The submission is empty" in results["output"]
    assert "1_echo" in results["output"], "it should say what was expected"


def test_malformed_submission_gets_zero_and_why(bundles, tmp_path):
    unpack_like_gradescope(bundles["stage1"], tmp_path)
    (tmp_path / "submission" / "server.py").write_text("print('my server')\n")
    results, _, _ = run_autograder(tmp_path, limit=60)
    assert results["score"] == 0
    assert "No stage folder found" in results["output"] and "server.py" in results["output"]


def test_hanging_submission_is_stopped_at_the_limit(bundles, tmp_path):
    """A .zip upload whose programs never start: stopped after 3 s, nothing left running."""
    unpack_like_gradescope(bundles["quick"], tmp_path)
    with zipfile.ZipFile(tmp_path / "submission" / "work.zip", "w") as zf:
        for script in ("chat_server.py", "chat_client.py"):
            zf.writestr("1_echo/" + script, HANGS)
    results, _, seconds = run_autograder(tmp_path, limit=60)
    assert results["score"] == 0 and results["tests"] == []
    assert results["max_score"] == STAGE1_POINTS   # the bundle's stages, as declared
    assert "Grading was stopped after 3 s" in results["output"]
    assert seconds < 30, "a 3 s limit took %.1f s" % seconds
    left = left_running(lambda: [p for p in processes_mentioning("chatkit-submission-")
                                 if started_by(p, "%s=%s" % RUN_MARKER)])
    assert not left, "programs left running: %s" % left


def test_a_broken_autograder_still_writes_results(bundles, tmp_path):
    unpack_like_gradescope(bundles["stage1"], tmp_path)
    shutil.rmtree(tmp_path / "source" / "grader")     # not even Python's part can run
    shutil.copytree(KIT / "solutions" / "1_echo", tmp_path / "submission" / "1_echo")
    results, _, _ = run_autograder(tmp_path, limit=60)
    assert results["score"] == 0
    assert "The autograder itself failed" in results["output"]


def test_bad_options_are_one_line(tmp_path):
    for args, phrase in [(["--out", str(tmp_path / "a.tar")], "must end in .zip"),
                         (["--out", str(tmp_path / "a.zip"), "--timeout", "900"], "10 minutes"),
                         (["--out", str(tmp_path / "a.zip"), "--stage", "7"], "no such stage")]:
        done = subprocess.run([sys.executable, "-m", "grader", "gradescope", *args], cwd=KIT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and phrase in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_a_bundle_says_which_stages_it_grades(tmp_path):
    """A bundle of one stage or of every stage: the command names the stages it grades,
    and nothing is given away by any of them (no handout holds a stage's answers)."""
    said = {}
    for name, args in (("stage2", ["--stage", "2"]), ("all", [])):
        done = subprocess.run([sys.executable, "-m", "grader", "gradescope", "--out",
                               str(tmp_path / (name + ".zip")), *args], cwd=KIT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        said[name] = " ".join(done.stdout.split())
    assert "It grades 2_naming," in said["stage2"], said["stage2"]
    assert "It grades %s," % ", ".join(STAGES) in said["all"], said["all"]
    assert "answers" not in said["stage2"] + said["all"]
