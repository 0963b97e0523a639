"""GitHub Classroom: the gradebook gets the grader's own points, check by check.

The workflow (classroom/classroom.yml, as the handout carries it) is run here as
GitHub runs it: each grading step's `run:` in bash, in a student repository, with
GITHUB_OUTPUT set; then the reporter's sum, computed as the reporter computes it
(classroom-resources/autograding-grading-reporter: for each runner, the base64
JSON of <RUNNER>_RESULTS; the total is the sum of every test's score, out of the
sum of the max_scores). That total must equal the grader's own score of the same
repository, whatever the student did.

A student can change every file of the repository: with --grader-from the
workflow clones the teacher's grader at a fixed commit (here from a git
repository served as a folder, GITHUB_SERVER_URL pointing at it), and a forged
grader/ in the student's repository no longer counts. The guide's regrade of
every final commit is run as written.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gradekit import (IMPLS, KIT, POSIX, STAGES, _kill_group, check_points, grade,
                      stage_maximum, workflow_steps)

sys.path.insert(0, str(KIT))
from grader.classroom import classroom_results  # noqa: E402
from grader.teach.handout import workflow_for  # noqa: E402

WORKFLOW = KIT / "classroom" / "classroom.yml"
# The workflow runs on GitHub's Linux runners (runs-on: ubuntu-latest); here it is run
# as there, each step in bash, `python` a symbolic link on the PATH.
pytestmark = pytest.mark.skipif(not POSIX, reason="Classroom's workflow runs on Linux")
STEP_LIMIT = 240   # seconds: one grading step (the grader bounds its own checks)


def grading_steps(text: str) -> list[dict]:
    return [s for s in workflow_steps(text) if re.fullmatch(r"stage\d", s.get("id", ""))]


def reporter_step(text: str) -> dict:
    found = [s for s in workflow_steps(text)
             if s.get("uses") == "classroom-resources/autograding-grading-reporter@v1"]
    assert len(found) == 1, found
    return found[0]


def python_on_path(folder: Path) -> dict:
    """An environment in which `python` is this Python, as actions/setup-python makes it."""
    folder.mkdir(exist_ok=True)
    (folder / "python").symlink_to(sys.executable)
    return dict(os.environ, PATH="%s%s%s" % (folder, os.pathsep, os.environ["PATH"]))


def workflow_env(text: str) -> dict:
    """The workflow's own `env:` (its top level): GRADER_REPOSITORY and GRADER_COMMIT."""
    block = re.search(r"^env:\n((?:  .*\n)+)", text, re.M)
    pairs = re.findall(r"^  (\w+): '?([^'\n]*)'?$", block.group(1), re.M) if block else []
    return dict(pairs)


def run_step(step: dict, repo: Path, env: dict, outputs: Path) -> dict:
    """Run one step's `run:` in bash, as GitHub does; return the outputs it set. What it
    writes to GITHUB_ENV is added to `env`, for the steps after it."""
    outputs.write_text("")
    github_env = outputs.with_suffix(".env")
    github_env.write_text("")
    proc = subprocess.Popen(["bash", "-e", "-c", step["run"]], cwd=repo,
                            env=dict(env, GITHUB_OUTPUT=str(outputs), GITHUB_ENV=str(github_env),
                                     GITHUB_WORKSPACE=str(repo)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=POSIX)
    try:
        output, _ = proc.communicate(timeout=STEP_LIMIT)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise AssertionError("%s ran past %d s" % (step["name"], STEP_LIMIT))
    step["log"] = output.decode("utf-8", "replace")
    env.update(line.split("=", 1) for line in github_env.read_text().splitlines() if "=" in line)
    return dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line)


def reporter_total(text: str, outputs_by_step: dict[str, dict]) -> tuple[int, int, dict]:
    """(total, maximum, results by runner) as the reporter computes them."""
    reporter = reporter_step(text)
    total = maximum = 0
    by_runner = {}
    for runner in [r for r in re.split(r"[\s,]", reporter["runners"]) if r]:
        reference = reporter["%s_RESULTS" % runner.upper()]
        step_id = re.fullmatch(r'"\$\{\{steps\.(\w+)\.outputs\.result\}\}"', reference).group(1)
        results = json.loads(base64.b64decode(outputs_by_step[step_id]["result"]))
        by_runner[runner] = results
        if results["max_score"]:
            maximum += results["max_score"]
            total += sum(test["score"] for test in results["tests"])
    return total, maximum, by_runner


def run_workflow(repo: Path, env: dict, tmp: Path) -> tuple[int, int, dict]:
    """Every `run:` step of the repository's workflow but the pip install (the
    dependencies are here already), then the reporter's sum."""
    text = (repo / ".github" / "workflows" / "classroom.yml").read_text(encoding="utf-8")
    runner_temp = tmp / "runner-temp"
    runner_temp.mkdir()
    env = dict(env, **workflow_env(text), RUNNER_TEMP=str(runner_temp))
    env.setdefault("GITHUB_SERVER_URL", "https://github.com")
    outputs = {}
    for number, step in enumerate(s for s in workflow_steps(text)
                                  if "run" in s and "pip install" not in s["run"]):
        outputs[step.get("id", number)] = run_step(step, repo, env,
                                                   tmp / ("step%d.out" % number))
    return reporter_total(text, outputs)


def teachers_repository(tmp: Path) -> tuple[str, str]:
    """The teacher's public repository of the grader (the handout, committed), served
    from a folder as GitHub serves it: (GITHUB_SERVER_URL, OWNER/NAME@COMMIT)."""
    server = tmp / "github"
    repository = server / "teacher" / "chat-kit"
    done = subprocess.run([sys.executable, "-m", "grader", "handout", "--out", str(repository)],
                          cwd=KIT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    git = ["git", "-C", str(repository), "-c", "user.name=T", "-c", "user.email=t@example.org"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the handout"]):
        subprocess.run(git + command, check=True, capture_output=True, timeout=60)
    commit = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True, timeout=60).stdout.strip()
    # What the student cannot touch: a later commit of the teacher's is not the one graded.
    (repository / "grader" / "test_1_echo.py").write_text("raise SystemExit('not this')\n")
    subprocess.run(git + ["commit", "-q", "-am", "later work"], check=True,
                   capture_output=True, timeout=60)
    return server.as_uri(), "teacher/chat-kit@" + commit


def student_repo(tmp: Path, stages_from: Path | None, *handout_args: str) -> Path:
    """A student's repository: the handout with the Classroom workflow grading every
    stage, its stages/ replaced by `stages_from` (None: the untouched skeletons)."""
    repo = tmp / "repo"
    done = subprocess.run([sys.executable, "-m", "grader", "handout", "--out", str(repo),
                           "--classroom", "--grade", "1,2,3,4", *handout_args],
                          cwd=KIT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    if stages_from is not None:
        shutil.rmtree(repo / "stages")
        shutil.copytree(stages_from, repo / "stages",
                        ignore=shutil.ignore_patterns("__pycache__"))
    return repo


def forge_the_grader(repo: Path) -> None:
    """What a student can do to their own copy of grader/: every check gets its points."""
    path = repo / "grader" / "classroom.py"
    text = path.read_text(encoding="utf-8")
    assert '"score": test["score"]' in text
    path.write_text(text.replace('"score": test["score"]', '"score": test["max_score"]'),
                    encoding="utf-8")


def crashing_servers(tmp: Path) -> Path:
    """The solutions, but every server crashes at start (an ImportError)."""
    folder = tmp / "crashing"
    shutil.copytree(KIT / "solutions", folder, ignore=shutil.ignore_patterns("__pycache__"))
    for stage in STAGES:
        (folder / stage / "chat_server.py").write_text("import no_such_module_here\n")
    return folder


def missing_stage_3(tmp: Path) -> Path:
    folder = tmp / "missing"
    shutil.copytree(KIT / "solutions", folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.rmtree(folder / "3_messaging")
    return folder


SUBMISSIONS = {
    "solutions": (lambda tmp: KIT / "solutions", {}),
    "untouched handout": (lambda tmp: None, {}),
    "one-check mistake": (lambda tmp: IMPLS / "faulty",
                          {"CHATKIT_FAULT": "names_space_after_each"}),
    "crashing server": (crashing_servers, {}),
    "missing stage folder": (missing_stage_3, {}),
}


@pytest.fixture(scope="module")
def workflow_runs(tmp_path_factory):
    """Each submission: (the reporter's total, maximum, results by runner; the grader's)."""
    def run_one(name):
        tmp = tmp_path_factory.mktemp(re.sub(r"\W", "_", name))
        make_stages, extra = SUBMISSIONS[name]
        repo = student_repo(tmp, make_stages(tmp))
        env = dict(python_on_path(tmp / "bin"), **extra)
        total, maximum, by_runner = run_workflow(repo, env, tmp)
        graded = grade(repo / "stages", env=extra)
        return name, (total, maximum, by_runner, graded)
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run_one, SUBMISSIONS))


@pytest.mark.parametrize("name", list(SUBMISSIONS))
def test_the_gradebook_gets_the_graders_score(workflow_runs, name, report):
    total, maximum, by_runner, graded = workflow_runs[name]
    assert (total, maximum) == (graded.score, graded.max_score), (
        "%s: the gradebook would get %d/%d, the grader gives %d/%d"
        % (name, total, maximum, graded.score, graded.max_score))
    report("classroom, %s: gradebook %d/%d, grader %d/%d"
           % (name, total, maximum, graded.score, graded.max_score))


def test_a_one_check_mistake_costs_one_check(workflow_runs):
    total, maximum, by_runner, _ = workflow_runs["one-check mistake"]
    whole = sum(stage_maximum(stage)[0] for stage in STAGES)   # as the grader declares it
    assert (total, maximum) == (whole - check_points("2.9"), whole)
    failed = [t for r in by_runner.values() for t in r["tests"] if t["status"] != "pass"]
    assert [t["name"].split()[0] for t in failed] == ["2.9"], failed
    message = failed[0]["message"]
    for part in ("Expected:", "Got:", "Hint:"):
        assert part in message, message
    assert by_runner["stage2"]["status"] == "fail" and by_runner["stage1"]["status"] == "pass"


def test_each_test_has_the_reporters_fields(workflow_runs):
    _, _, by_runner, _ = workflow_runs["crashing server"]
    for runner, results in by_runner.items():
        assert {"version", "status", "max_score", "tests"} <= set(results), runner
        for test in results["tests"]:
            assert {"name", "status", "score", "message", "line_no"} <= set(test)
            assert test["status"] in ("pass", "fail", "error") and test["line_no"] == 0
            assert re.match(r"\d\.\d+ ", test["name"]), test["name"]


def test_a_missing_stage_folder_gets_zero_with_the_reason(workflow_runs):
    _, _, by_runner, _ = workflow_runs["missing stage folder"]
    stage3 = by_runner["stage3"]
    assert stage3["max_score"] > 0 and sum(t["score"] for t in stage3["tests"]) == 0
    assert "no such file" in stage3["tests"][0]["message"], stage3["tests"][0]


def test_the_workflow_reads_right():
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "\t" not in text
    found = grading_steps(text)
    assert [s["id"] for s in found] == ["stage%d" % n for n in range(1, len(STAGES) + 1)]
    for number, step in enumerate(found, 1):
        assert step["run"] == ('cd "${GRADER:?no grader}" && python -m pytest grader --impl '
                               '"$GITHUB_WORKSPACE/stages" --stage %d --classroom-results '
                               '"$GITHUB_WORKSPACE/stage%d.json"' % (number, number))
        assert step["if"] == "always()" and int(step["timeout-minutes"]) <= 10
    assert workflow_env(text) == {"GRADER_REPOSITORY": "", "GRADER_COMMIT": ""}
    reporter = reporter_step(text)
    assert reporter["if"] == "always()"
    assert reporter["runners"] == ",".join(s["id"] for s in found)
    for step in found:
        assert reporter["%s_RESULTS" % step["id"].upper()] == \
            '"${{steps.%s.outputs.result}}"' % step["id"]
    fewer = workflow_for(text, [1, 2])
    assert [s["id"] for s in grading_steps(fewer)] == ["stage1", "stage2"]
    assert reporter_step(fewer)["runners"] == "stage1,stage2" and "STAGE3_RESULTS" not in fewer
    third = workflow_for(text, [3], "my-course/chat-kit@1a2b3c4")
    assert [s["id"] for s in grading_steps(third)] == ["stage3"]
    assert reporter_step(third)["runners"] == "stage3"
    assert workflow_env(third) == {"GRADER_REPOSITORY": "my-course/chat-kit",
                                   "GRADER_COMMIT": "1a2b3c4"}


def test_classroom_results_of_a_grader_error_say_error():
    results = {"tests": [
        {"name": "1.1 x", "status": "passed", "score": 2, "max_score": 2, "output": "Passed."},
        {"name": "1.2 y", "status": "failed", "score": 0, "max_score": 1,
         "output": "The grader hit an error of its own in this check (TypeError: …)."},
        {"name": "1.3 z", "status": "failed", "score": 0, "max_score": 0, "output": "Skipped."},
    ]}
    report = classroom_results(results)
    assert report["status"] == "error" and report["max_score"] == 3
    assert [t["status"] for t in report["tests"]] == ["pass", "error"]


def test_a_forged_grader_counts_only_where_the_students_copy_grades(tmp_path):
    """The student's repository holds grader/, which the student can change: here its
    classroom.py gives every check its points, on the untouched skeletons. Graded by
    the student's own copy, the gradebook gets that forgery; graded by the teacher's
    repository at a fixed commit (--grader-from), the skeletons' true score, whatever
    the teacher committed after that commit."""
    server_url, grader_from = teachers_repository(tmp_path)
    env = dict(python_on_path(tmp_path / "bin"), GITHUB_SERVER_URL=server_url)
    truth = grade(KIT / "stages", "--stage", "1")
    scores = {}
    for name, args in (("own copy", ()), ("teacher's", ("--grader-from", grader_from))):
        tmp = tmp_path / re.sub(r"\W", "_", name)
        tmp.mkdir()
        repo = student_repo(tmp, None, *args)
        workflow = repo / ".github" / "workflows" / "classroom.yml"
        workflow.write_text(workflow_for(workflow.read_text(encoding="utf-8"), [1],
                                         args[1] if args else ""), encoding="utf-8")
        forge_the_grader(repo)
        total, maximum, _ = run_workflow(repo, env, tmp)
        scores[name] = (total, maximum)
    assert truth.score < truth.max_score
    assert scores["own copy"] == (truth.max_score, truth.max_score), scores
    assert scores["teacher's"] == (truth.score, truth.max_score), scores


def test_the_guides_regrade_of_final_commits_runs_as_written(tmp_path):
    """docs/teachers.md § Regrading every final commit, its commands as written, with
    GitHub's address pointing at a folder of git repositories: a student's repository
    (solutions in stages/, a forged grader/) is cloned at its last commit, the commit
    is noted, and batch grades its stages/ with the kit's grader: full marks, no more.
    A student on the list with no repository gets no folder (and no row)."""
    guide = (KIT / "docs" / "teachers.md").read_text(encoding="utf-8")
    section = guide.split("#### Regrading every final commit", 1)[1]
    recipe = section.split("```\n", 2)[1]
    assert "https://github.com/my-course/week2-$user" in recipe
    server = tmp_path / "github"
    repo = server / "my-course" / "week2-ada"
    done = subprocess.run([sys.executable, "-m", "grader", "handout", "--out", str(repo),
                           "--stages", "2", "--classroom"], cwd=KIT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for stage in STAGES[:2]:
        shutil.rmtree(repo / "stages" / stage)
        shutil.copytree(KIT / "solutions" / stage, repo / "stages" / stage,
                        ignore=shutil.ignore_patterns("__pycache__"))
    forge_the_grader(repo)
    git = ["git", "-C", str(repo), "-c", "user.name=A", "-c", "user.email=a@example.org"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "stage 2"]):
        subprocess.run(git + command, check=True, capture_output=True, timeout=60)
    commit = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True, timeout=60).stdout.strip()
    work = tmp_path / "teacher"
    work.mkdir()
    (work / "students.txt").write_text("ada\nnobody\n")
    script = recipe.replace("https://github.com/", server.as_uri() + "/")
    done = subprocess.run(["bash", "-c", script], cwd=work, capture_output=True, text=True,
                          timeout=STEP_LIMIT, env=dict(os.environ, PYTHONPATH=str(KIT)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (work / "final-commits.txt").read_text().split()[:2] == ["ada", commit]
    rows = (work / "grades-week2" / "grades.csv").read_text(encoding="utf-8-sig").splitlines()
    points, _ = stage_maximum("2_naming")
    assert rows[1:] == ["ada,,%d,,,%d,%d,graded,%s" % (points, points, points,
                                                      rows[1].rsplit(",", 1)[1])], rows
