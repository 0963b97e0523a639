"""The grader itself: full marks where deserved, its interface, its bounds.

Every test here runs the real grader (`python -m pytest grader ...`) on a real
implementation directory and judges it by the results.json it writes.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from gradekit import (GRADER_TRACEBACK, IMPLS, KIT, STAGES, grade, grade_many, left_running,
                      processes_mentioning)

SOLUTIONS = KIT / "solutions"
SOLUTION_RUNS = 3
# Seconds: the most the fastest of three full gradings of the solutions may take. A guard
# against hangs and gross regressions, not a measurement: measured 6-7.5 s on a quiet 2-core
# machine and 7.1-7.3 s with a busy loop beside it, so this is over twice that.
CEILING = 20.0


def impl_with(tmp_path, **folders):
    """A new implementation directory in tmp_path: {stage name: solution stage to copy}.
    Like a student's folder placed in the kit, its protocol.py is two folders up."""
    shutil.copy(KIT / "protocol.py", tmp_path / "protocol.py")
    impl = tmp_path / "impl"
    for stage, source in folders.items():
        shutil.copytree(SOLUTIONS / source, impl / stage)
    return impl


@pytest.fixture(scope="module")
def solution_runs():
    """The reference graded several times in a row (one at a time: timing is honest)."""
    return [grade(SOLUTIONS) for _ in range(SOLUTION_RUNS)]


def test_solutions_score_full_marks(solution_runs):
    first = solution_runs[0]
    failed = {t["number"]: t["output"] for t in first.tests() if t["status"] == "failed"}
    assert not failed, "the reference solutions failed checks:\n%s" % json.dumps(failed, indent=2)
    assert first.score == first.max_score > 0
    assert first.status == 0, first.output[-2000:]
    for stage in STAGES:
        got, out_of = first.stage_score(stage)
        assert out_of > 0 and got == out_of, "%s: %d/%d" % (stage, got, out_of)


def test_solutions_score_full_marks_every_time(solution_runs, record_property, report):
    seconds = [round(run.seconds, 2) for run in solution_runs]
    record_property("grader_seconds_on_solutions", seconds)
    report("grader wall time on the solutions (all stages), %d runs: %s s" % (len(seconds), seconds))
    for run in solution_runs:
        assert run.score == run.max_score, run.failed()
    # The fastest run is what the grader itself costs; the others may include a busy machine.
    assert min(seconds) <= CEILING, "grading the solutions took %.1f s at best (ceiling %.0f s)" % (
        min(seconds), CEILING)


def test_results_json_has_gradescope_fields(solution_runs):
    results = solution_runs[0].results
    assert {"score", "max_score", "execution_time", "tests"} <= results.keys()
    numbers = [t["number"] for t in results["tests"]]
    assert len(numbers) == len(set(numbers)), "check numbers must be unique"
    for test in results["tests"]:
        assert {"name", "number", "score", "max_score", "status", "output", "tags",
                "visibility"} <= test.keys()
        assert test["name"].startswith(test["number"] + " ")
        assert len(test["tags"]) == 1 and test["tags"][0] in STAGES
        assert test["number"].split(".")[0] == test["tags"][0][0]
        assert test["output"].strip()
    assert {t["tags"][0] for t in results["tests"]} == set(STAGES)


def test_score_table_printed(solution_runs):
    output = solution_runs[0].output
    for stage in STAGES:
        assert stage in output
    assert "total" in output


@pytest.mark.parametrize("design", ["threaded", "asyncio", "chatty"])
def test_alternative_designs_score_full_marks(design):
    """Fairness: servers and clients written independently, with other designs; and the
    reference server logging about 2 KB per message on both streams (impls/chatty),
    whose output grows with the traffic: the output limit stops runaways only."""
    run = grade(IMPLS / design)
    failed = {n: run.output_of(n)[:600] for n in run.failed()}
    assert not failed, "%s design lost points:\n%s" % (design, json.dumps(failed, indent=2))
    assert run.score == run.max_score > 0


@pytest.mark.parametrize("spins", [False, True])
def test_the_server_is_every_process_it_started(spins):
    """A chat_server.py that launches the real server as its child (as a virtual
    environment's python.exe does on Windows): the child that spins fails 1.12, and only
    1.12; the correct child passes it (impls/launcher)."""
    run = grade(IMPLS / "launcher", "--stage", "1",
                env={"CHATKIT_LAUNCHED_SPINS": "1" if spins else "0"})
    assert run.failed() == (["1.12"] if spins else []), run.output[-3000:]
    if spins:
        assert "its 2 processes together" in run.output_of("1.12"), run.output_of("1.12")


def test_stage_option_selects_stages():
    by_number, by_name = grade_many([(SOLUTIONS, ("--stage", "2"), None),
                                     (SOLUTIONS, ("--stage", "exit,1_echo"), None)])
    assert {t["tags"][0] for t in by_number.tests()} == {"2_naming"}
    assert {t["tags"][0] for t in by_name.tests()} == {"1_echo", "4_exit"}


def test_bad_options_are_usage_errors(tmp_path):
    for args in (["--stage", "9"], ["--impl", str(tmp_path / "nowhere")]):
        done = subprocess.run([sys.executable, "-m", "pytest", "grader", *args], cwd=KIT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 4, (args, done.returncode, done.stdout, done.stderr)
        assert "no such" in done.stderr


def test_missing_stage_folder_scores_zero_with_message(tmp_path):
    """An implementation with only stage 1: stages 2-4 score zero, saying why, quickly."""
    run = grade(impl_with(tmp_path, **{"1_echo": "1_echo"}))
    assert run.stage_score("1_echo")[0] == run.stage_score("1_echo")[1] > 0
    for stage in STAGES[1:]:
        got, out_of = run.stage_score(stage)
        assert got == 0 < out_of
    assert "no such file" in run.output_of("2.1")
    assert "Blocked by check 2.1" in run.output_of("2.2")
    assert run.status != 0
    assert run.seconds < 30


def test_failure_output_shows_exchange_expectation_and_hint(tmp_path):
    """A server that echoes in stage 2 fails 2.1 with the whole story."""
    run = grade(impl_with(tmp_path, **{"2_naming": "1_echo"}), "--stage", "2")
    output = run.output_of("2.1")
    for part in ("The conversation so far:", "→ server  'NAME", "Expected:", "Got:", "Hint:"):
        assert part in output, output


PLANTS = {"PYTHONPATH": str(KIT / "tests" / "plants") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_a_bug_of_the_grader_reads_as_one_plain_line():
    """A TypeError inside the grader's own code (tests/plants/grader_bug.py) fails the
    checks it hits with one plain line and the conversation so far, never a traceback;
    the other checks still run and the score table and results.json still come."""
    run = grade(SOLUTIONS, "--stage", "2", "-p", "grader_bug", env=PLANTS)
    hit = [t for t in run.tests() if t["output"].startswith("The grader hit an error of its own")]
    assert hit, run.output[-3000:]
    for test in hit:
        first, _, rest = test["output"].partition("\n")
        assert "TypeError" in first and "not a verdict on your program" in first, first
        assert "The conversation so far:" in rest and "'NAME " in rest, test["output"]
        assert not GRADER_TRACEBACK.search(test["output"]), test["output"]
    assert not GRADER_TRACEBACK.search(run.output), run.output[-3000:]
    assert "total" in run.output and any(t["status"] == "passed" for t in run.tests())


def test_a_check_out_of_time_fails_with_its_story_and_the_run_goes_on():
    """A check that waits without bound (tests/plants/hung_check.py: 1.2, cut to 3 s) is
    stopped the way it is on every system, Windows included: its programs are stopped,
    it fails with the conversation so far and says why, never with a stack dump; where
    the server was when time ran out (asked before it was stopped) is said, and the hint
    fits it (idle in select(), not stuck); the other checks run, the table and
    results.json come, and nothing is left running."""
    run = grade(SOLUTIONS, "--stage", "1", "-p", "hung_check", env=PLANTS)
    checks = {t["number"]: t for t in run.tests()}
    hung = checks.pop("1.2")
    assert hung["status"] == "failed", run.output[-3000:]
    for part in ("The conversation so far:", "alice    → server  'tab\\there'",
                 "Expected: the check to finish within 3 s",
                 "Got:      it was still running after 3 s, so the grader stopped it",
                 "Where:    the server is waiting in select(), in serve_forever() at ",
                 "solutions/1_echo/server.py line ",   # as --impl gave it
                 "(idle: waiting for the next event",
                 "Hint:     your program was idle in select(), not stuck",
                 "Stopped by the grader when the check ran out of time."):
        assert part in hung["output"], hung["output"]
    assert not GRADER_TRACEBACK.search(run.output) and "Timeout" not in run.output, run.output
    assert [n for n, t in checks.items() if t["status"] != "passed"] == [], run.output[-3000:]
    assert run.score == run.max_score - 1 and "total" in run.output
    assert left_running(lambda: processes_mentioning(str(SOLUTIONS))) == []


def test_no_process_left_behind(solution_runs):
    assert left_running(lambda: processes_mentioning(str(SOLUTIONS))) == []


def test_results_path_is_checked_before_grading(tmp_path):
    """A --results folder that can't be made is one usage line at once, not a traceback
    after the whole grading; a missing folder is created."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for target in (blocker / "r.json", tmp_path):
        done = subprocess.run([sys.executable, "-m", "pytest", "grader", "--results", str(target)],
                              cwd=KIT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 4, (target, done.stdout, done.stderr)
        assert "--results" in done.stderr and "Traceback" not in done.stderr + done.stdout
    nested = tmp_path / "new" / "folder" / "r.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "grader", "--impl", str(SOLUTIONS),
                           "--stage", "1", "-k", "echoes_one_message", "--results", str(nested)],
                          cwd=KIT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-2000:]
    assert json.loads(nested.read_text(encoding="utf-8"))["score"] == 2


def test_without_pytest_timeout_the_grader_refuses_in_one_line():
    """Without pytest-timeout a hung check would hang the grading (no check has its time
    limit, and pytest only warns of an unknown mark): the grader says so in one usage
    line that names the fix, before any program is started, and grades nothing. Both
    ways it can be missing: not installed (no plugin loads itself) and left out."""
    not_installed = ({"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}, [])
    left_out = ({}, ["-p", "no:timeout"])
    for env, args in (not_installed, left_out):
        done = subprocess.run([sys.executable, "-m", "pytest", "grader", "--impl", str(SOLUTIONS),
                               "--stage", "1", "-q", "-p", "no:cacheprovider", *args],
                              cwd=KIT, capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, **env))
        assert done.returncode == 4, (args, done.stdout[-2000:], done.stderr)
        assert "pytest-timeout" in done.stderr and \
            "python -m pip install -r requirements.txt" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr + done.stdout and "passed" not in done.stdout


def test_a_students_screen_ends_with_the_table_and_what_to_fix(tmp_path):
    """Failures are titled '2.1 <title>'; below the score table, 'Fix first:' repeats the
    first failure's expectation and hint; no short summary or timeout banner follows."""
    run = grade(impl_with(tmp_path, **{"2_naming": "1_echo"}), "--stage", "2")
    out = run.output
    assert "_ 2.1 NAME alice gets HELLO alice _" in out, out[:3000]
    assert "test_name_gets_hello" not in out
    table = out.index("total ")
    fix_first = out.index("Fix first: 2.1 NAME alice gets HELLO alice")
    assert table < fix_first
    tail = out[fix_first:]
    assert "Expected: alice    ← server  'HELLO alice'" in tail and "Hint:" in tail
    assert "short test summary" not in out
    assert "timeout:" not in out.split("collected", 1)[0], "pytest-timeout's banner is shown"


def test_an_interrupted_batch_of_gradings_leaves_none_running(tmp_path):
    """Ctrl-C (or a test's timeout) while grade_many waits stops the gradings already
    running (each runs in a session of its own, out of the terminal's reach) and starts
    no more: none runs on as an orphan."""
    import _thread
    import threading
    import gradekit
    copy = tmp_path / "interrupted"
    shutil.copytree(SOLUTIONS, copy)
    jobs = [(copy, ("--stage", "3"), None)] * 4
    started = []

    def interrupt_once_two_run():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with gradekit.RUNNING_LOCK:
                running = list(gradekit.RUNNING)
            if len(running) >= 2:
                started.extend(running)
                break
            time.sleep(0.05)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_once_two_run, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        grade_many(jobs, workers=2)
    assert len(started) == 2, "two gradings were to be running when Ctrl-C came"
    assert all(proc.poll() is not None for proc in started)
    assert left_running(lambda: processes_mentioning(str(copy))) == []
