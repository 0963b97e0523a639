"""Classroom 50 and PrairieLearn, each run the way its own documentation says it runs
an autograder, give the grader's own score.

* Classroom 50 (foundation50/classroom50, wiki "Advanced Autograding"): the folder
  `python -m grader classroom50 --out DIR --stage N` writes is packed as the course's
  bundle (a .tar.gz of the assignment's folder), unpacked into the runner's temporary
  folder, and its autograder.py is run with the runner's Python in the student's
  checkout (a repository made from the handout: stages/, protocol.py, and a grader/
  of the student's own that must not be used), with the submission's identity in
  the environment; result.json is read and checked against their result.json
  contract (schema, identity, score = the tests' sum, each test's fields).
* PrairieLearn (PrairieLearn/PrairieLearn, docs/externalGrading.md): a temporary
  root stands in for /grade: serverFilesCourse/chatkit/ as the question names it,
  the two uploaded files in student/; the entrypoint of the question's info.json is
  run with its arguments, bounded by the question's timeout; results/results.json is
  read (score from 0 to 1, one test per check).

Both run as a user other than root (nobody) when the tests run as root, with a
system Python that has no pytest of its own: the copies carry theirs. For each
stage: the reference solution, and one planted fault of that stage (from
tests/test_mutants.py's catalog, baked into a self-contained server as a student
hands it in); the score and every check's points must equal what `pytest grader
--impl` gives the same files. No container engine or Actions runner runs here.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from gradekit import IMPLS, KIT, LINUX, POSIX, STAGES, _kill_group, grade_many

pytestmark = pytest.mark.skipif(not LINUX, reason="the platforms grade on Linux")

SIMULATION_LIMIT = 600     # s: one simulated grading, the platform's own bound or less


# --- the submissions: the reference, and one planted fault per stage -------------------------

def planted_faults() -> dict:
    """stage -> the first server fault of test_mutants' catalog that the stage introduces."""
    from test_mutants import CATALOG
    faults = {}
    for fault in CATALOG:
        if fault.stage in STAGES and not fault.name.startswith("client_"):
            faults.setdefault(fault.stage, fault)
    return faults


def faulty_program(stage: str, role: str, fault: str) -> str:
    """tests/impls/faulty's program for `stage`, in one file, its fault fixed in it."""
    source = (IMPLS / "faulty" / "faulty_chat.py").read_text(encoding="utf-8")
    switch = 'FAULT = os.environ.get("CHATKIT_FAULT", "")'
    assert source.count(switch) == 1, "faulty_chat.py no longer chooses its fault this way"
    return (source.replace(switch, "FAULT = %r" % fault)
            + "\n\nif __name__ == \"__main__\":\n    sys.exit(%s_main(stage=%d))\n"
            % (role, STAGES.index(stage) + 1))


def stage_files(stage: str, fault: str | None) -> dict:
    """The stage's files as a student hands them in (name -> text)."""
    if fault is None:   # the reference: its two programs and the modules they import
        return {path.name: path.read_text(encoding="utf-8")
                for path in sorted((KIT / "solutions" / stage).glob("*.py"))}
    return {"chat_server.py": faulty_program(stage, "server", fault),
            "chat_client.py": faulty_program(stage, "client", fault)}


CASES = [(stage, None) for stage in STAGES] + [(stage, "fault") for stage in STAGES]


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """The grader's own results (pytest grader --impl) on the cases' files: two gradings
    of every stage, side by side (the reference's stage folders; each stage's planted
    fault in its folder). Returns results(stage, kind) -> (fault or None, that stage's
    part of results.json: score, max_score, tests)."""
    faults = planted_faults()
    assert set(faults) == set(STAGES), "a stage without a planted server fault"
    impls = {}
    for kind in (None, "fault"):
        impl = tmp_path_factory.mktemp("own") / "impl"
        for stage in STAGES:
            (impl / stage).mkdir(parents=True)
            for name, text in stage_files(stage, faults[stage].name if kind else None).items():
                (impl / stage / name).write_text(text, encoding="utf-8")
        shutil.copy(KIT / "protocol.py", impl / "protocol.py")
        impls[kind] = impl
    graded = dict(zip(impls, grade_many([(impl, [], None) for impl in impls.values()],
                                        workers=2)))

    def results(stage: str, kind: str | None) -> tuple[str | None, dict]:
        tests = [t for t in graded[kind].results["tests"] if t["tags"] == [stage]]
        return (faults[stage].name if kind else None,
                {"tests": tests, "score": sum(t["score"] for t in tests),
                 "max_score": sum(t["max_score"] for t in tests)})
    return results


def what(files: dict) -> str:
    """'reference' or the planted fault's name, read from the server as handed in."""
    import re
    found = re.search(r"^FAULT = '([^']+)'", files.get("chat_server.py", ""), re.M)
    return found.group(1) if found else "reference"


def points_by_check(tests: list[dict], name: str, score: str) -> dict:
    return {t[name]: t[score] for t in tests}


# --- running as the platform's user -------------------------------------------------------------

def runner_user() -> tuple[int | None, str]:
    """(uid to run as, a Python 3.10+ it can run): nobody and a system Python when
    root; ourselves and our own Python otherwise."""
    if os.geteuid() != 0:
        return None, sys.executable
    import pwd
    nobody = pwd.getpwnam("nobody").pw_uid
    # It must start itself again as nobody (root's own Python, in root's home, may
    # start and then fail to: its files are out of nobody's reach).
    can = ("import subprocess, sys; sys.exit(sys.version_info < (3, 10) or subprocess.run("
           "[sys.executable, '-c', 'import json']).returncode)")
    for python in ["/usr/bin/python3", shutil.which("python3") or "", sys.executable]:
        if python and subprocess.run([python, "-c", can], cwd="/", capture_output=True,
                                     timeout=30, **as_user(nobody)).returncode == 0:
            return nobody, python
    pytest.skip("no Python 3.10+ that nobody can run")


def shared_root() -> Path:
    """A temporary folder the platform's user owns (tmp_path is root's alone)."""
    root = Path(tempfile.mkdtemp(prefix="chatkit-platform-test-"))
    os.chmod(root, 0o755)
    return root


def hand_over(root: Path, uid: int | None) -> None:
    if uid is not None:
        for folder, dirs, files in os.walk(root):
            os.chown(folder, uid, uid)
            for name in files:
                os.chown(os.path.join(folder, name), uid, uid)


def as_user(uid: int | None) -> dict:
    """subprocess's arguments that start a program as `uid` (its group the same number,
    no other groups), or none."""
    return {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}


def run_as(command: list[str], uid: int | None, cwd: Path, env: dict,
           limit: float) -> tuple[int, str, float]:
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=POSIX, **as_user(uid))
    try:
        output, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise AssertionError("%s ran past %d s" % (command, limit))
    return proc.returncode, output.decode("utf-8", "replace"), time.monotonic() - started


def bare_environment(python: str) -> dict:
    """A runner's environment: a PATH with the Python, no PYTHONPATH, no pytest."""
    return {"PATH": os.pathsep.join([os.path.dirname(python), "/usr/bin", "/bin"]),
            "LANG": "C.UTF-8", "HOME": "/tmp"}


# --- Classroom 50 --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def classroom50(tmp_path_factory):
    """stage -> the assignment's folder, as `python -m grader classroom50` writes it."""
    folders = {}
    for stage in STAGES:
        out = tmp_path_factory.mktemp("c50") / "week"
        done = subprocess.run([sys.executable, "-m", "grader", "classroom50", "--out", str(out),
                               "--stage", stage, "--timeout", "300"], cwd=KIT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        folders[stage] = out
    return folders


def run_classroom50(folder: Path, files: dict, stage: str, report=None) -> tuple[dict, str, str]:
    """Their runner's steps: fetch and unpack the bundle, run autograder.py in the
    checkout, read result.json. Returns (result.json, release-body.md, the log)."""
    uid, python = runner_user()
    root = shared_root()
    try:
        bundle = root / "week1.tar.gz"
        with tarfile.open(bundle, "w:gz") as tar:       # publish-pages: the assignment's folder
            tar.add(folder, arcname="week1")
        runtime = root / "runtime"
        with tarfile.open(bundle) as tar:               # runner.py: fetch_bundle
            if hasattr(tarfile, "data_filter"):
                tar.extractall(runtime, filter="data")
            else:
                tar.extractall(runtime)
        checkout = root / "checkout"                    # the student's repository
        checkout.mkdir()
        for name, text in files.items():
            (checkout / "stages" / stage).mkdir(parents=True, exist_ok=True)
            (checkout / "stages" / stage / name).write_text(text, encoding="utf-8")
        shutil.copy(KIT / "protocol.py", checkout / "protocol.py")
        (checkout / "grader").mkdir()                   # the student's own grader: never used
        (checkout / "grader" / "__init__.py").write_text("raise SystemExit('the student grader')\n")
        (checkout / ".classroom50.yaml").write_text("classroom: net\n")
        sha = commit(checkout)                          # the submitted commit, checked out
        hand_over(root, uid)
        env = dict(bare_environment(python), CLASSROOM="net", ASSIGNMENT="week1",
                   SUBMISSION_TAG="submit/2026-12-07T10-00-00Z-abc1234", OWNER="ann",
                   USERNAME="ann", COMMIT_URL="https://github.com/c/net-week1-ann/commit/abc",
                   RELEASE_URL="https://github.com/c/net-week1-ann/releases/tag/submit",
                   REVIEW_URL="https://github.com/c/net-week1-ann/compare/a...abc",
                   CLASSROOM50_BUNDLE_DIR=str(runtime / "week1"), GITHUB_ACTIONS="true",
                   GITHUB_SHA=sha, GITHUB_REPOSITORY="c/net-week1-ann")
        code, log, seconds = run_as([python, str(runtime / "week1" / "autograder.py")], uid,
                                    checkout, env, SIMULATION_LIMIT)
        assert code == 0, "autograder.py exited %s (an infrastructure error):\n%s" % (code, log)
        if report:
            report(lambda result: "classroom50, %s %s: %s/%s in %.1f s"
                   % (stage, what(files), result["score"], result["max-score"], seconds))
        if uid is not None:
            assert (checkout / "result.json").stat().st_uid == uid, "not written as nobody"
        result = json.loads((checkout / "result.json").read_text(encoding="utf-8"))
        body = (checkout / "release-body.md").read_text(encoding="utf-8")
        return result, body, log
    finally:
        shutil.rmtree(root, ignore_errors=True)


def commit(checkout: Path) -> str:
    """The checkout as a repository at the commit the student submitted (its .git/ is
    there, as in the runner's checkout); its hash, or '' without git."""
    if not shutil.which("git"):
        return ""
    env = dict(os.environ, GIT_AUTHOR_NAME="ann", GIT_AUTHOR_EMAIL="ann@uni.example",
               GIT_COMMITTER_NAME="ann", GIT_COMMITTER_EMAIL="ann@uni.example")
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "my chat server"]):
        subprocess.run(["git", *command], cwd=checkout, env=env, check=True, timeout=60,
                       capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True,
                          text=True, check=True, timeout=60).stdout.strip()


def check_contract(result: dict) -> None:
    """What their runner and collect-scores check of a result.json (the wiki's table)."""
    assert result["schema"] == "classroom50/result/v1"
    assert result["classroom"] == "net" and result["assignment"] == "week1"
    assert result["submission"].startswith("submit/") and result["commit"].startswith("https://")
    assert isinstance(result["score"], int) and isinstance(result["max-score"], int)
    assert result["score"] == sum(t["score"] for t in result["tests"])
    assert result["max-score"] == sum(t["max-score"] for t in result["tests"])
    for t in result["tests"]:
        assert set(t) >= {"test-name", "passed", "score", "max-score"}
        assert isinstance(t["passed"], bool) and len(t["test-name"].encode()) <= 100


@pytest.mark.parametrize("stage, kind", CASES, ids=["%s-%s" % (s, k or "reference")
                                                     for s, k in CASES])
def test_classroom50_gives_the_graders_score(classroom50, own, stage, kind, report):
    fault, expected = own(stage, kind)
    said = []
    result, body, log = run_classroom50(classroom50[stage], stage_files(stage, fault), stage,
                                        said.append)
    report(said[0](result) + " (the grader's own: %s/%s)"
           % (expected["score"], expected["max_score"]))
    check_contract(result)
    assert result["score"] == expected["score"] and result["max-score"] == expected["max_score"]
    assert points_by_check(result["tests"], "test-name", "score") == \
        points_by_check(expected["tests"], "name", "score")
    assert expected["tests"], "the grader's own grading has no check of %s" % stage
    if kind:
        assert result["score"] < result["max-score"], "the planted %s was not caught" % fault
        failed = [t for t in result["tests"] if not t["passed"]]
        assert failed and failed[0]["output"] and failed[0]["test-name"] in body
    else:
        assert result["score"] == result["max-score"], body
    assert "the student grader" not in log, "the student's own grader/ ran"
    assert "%s of %s points" % (result["score"], result["max-score"]) in body


def test_classroom50_empty_checkout_scores_zero_and_says_why(classroom50):
    stage = STAGES[-1]
    result, body, log = run_classroom50(classroom50[stage], {}, stage)
    check_contract(result)
    from grader import catalog
    assert result["score"] == 0 and result["max-score"] == catalog.maximum([stage])
    assert [t["passed"] for t in result["tests"]] == [False], "one entry: not graded"
    assert "No stage folder found" in body and "protocol.py" in body, body
    assert stage in body, "the stage the assignment grades is not named"


# --- PrairieLearn --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def prairielearn(tmp_path_factory):
    out = tmp_path_factory.mktemp("pl") / "course"
    done = subprocess.run([sys.executable, "-m", "grader", "prairielearn", "--out", str(out),
                           *[a for s in STAGES for a in ("--stage", s)]], cwd=KIT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


def run_prairielearn(course: Path, stage: str, files: dict, report=None) -> tuple[dict, str]:
    """A grading job as their docs lay it out: /grade (here a temporary root) holding
    serverFilesCourse/ (what info.json names), student/ and data/; the entrypoint with
    its arguments, stopped at the question's timeout; results/results.json read."""
    info = json.loads((course / "questions" / "chatkit" / stage / "info.json").read_text())
    options = info["externalGradingOptions"]
    assert info["gradingMethod"] == "External" and options["enabled"] is True
    assert 0 < options["timeout"] <= 600
    uid, python = runner_user()
    root = shared_root()
    try:
        for name in options["serverFilesCourse"]:
            shutil.copytree(course / "serverFilesCourse" / name,
                            root / "serverFilesCourse" / name)
        (root / "student").mkdir()
        for name, text in files.items():
            (root / "student" / name).write_text(text, encoding="utf-8")
        (root / "data").mkdir()
        (root / "data" / "data.json").write_text(json.dumps({"submitted_answers": {}}))
        entrypoint = options["entrypoint"]
        entrypoint = entrypoint if isinstance(entrypoint, list) else entrypoint.split()
        assert entrypoint[0].startswith("/grade/")
        program = root / entrypoint[0][len("/grade/"):]
        os.chmod(program, 0o755)                        # "chmod +x /path/to/entrypoint"
        hand_over(root, uid)
        bound = (["timeout", "--kill-after=5", str(options["timeout"])]   # the container's end
                 if shutil.which("timeout") else [])
        code, log, seconds = run_as([*bound, str(program), *entrypoint[1:]], uid, root,
                                    bare_environment(python), options["timeout"] + 30)
        assert code == 0, "the entrypoint exited %s:\n%s" % (code, log)
        if report:
            report(lambda results: "prairielearn, %s %s: score %.4f of %d in %.1f s"
                   % (stage, what(files), results["score"],
                      sum(t["max_points"] for t in results.get("tests", [])), seconds))
        results_file = root / "results" / "results.json"
        if uid is not None:
            assert results_file.stat().st_uid == uid, "not written as nobody"
        assert results_file.stat().st_size <= 1_000_000
        return json.loads(results_file.read_text(encoding="utf-8")), log
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("stage, kind", CASES, ids=["%s-%s" % (s, k or "reference")
                                                     for s, k in CASES])
def test_prairielearn_gives_the_graders_score(prairielearn, own, stage, kind, report):
    fault, expected = own(stage, kind)
    said = []
    results, log = run_prairielearn(prairielearn, stage, stage_files(stage, fault), said.append)
    report(said[0](results) + " (the grader's own: %s/%s)"
           % (expected["score"], expected["max_score"]))
    assert results["gradable"] is True, results.get("format_errors")
    tests = results["tests"]
    assert points_by_check(tests, "name", "points") == \
        points_by_check(expected["tests"], "name", "score")
    maximum = sum(t["max_points"] for t in tests)
    assert maximum == expected["max_score"]
    assert 0 <= results["score"] <= 1
    assert round(results["score"] * maximum, 6) == expected["score"]
    if kind:
        assert results["score"] < 1, "the planted %s was not caught" % fault
        assert any(t["points"] < t["max_points"] and t["output"] for t in tests)
    else:
        assert results["score"] == 1, results["message"]


def test_prairielearn_empty_upload_is_not_gradable_and_says_why(prairielearn):
    stage = STAGES[0]
    results, log = run_prairielearn(prairielearn, stage, {})
    assert results["gradable"] is False and results["format_errors"]
    assert "empty" in results["format_errors"][0] and stage in results["format_errors"][0]
