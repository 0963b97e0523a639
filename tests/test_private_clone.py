"""The kit cloned where only root can read it (a `mktemp -d` folder, anything under
/root), graded as root: the grader's programs run as a user of their own, who
cannot read the folder, so they get a copy (grader/isolation.py, readable_copy).

The copy holds what a submission may reach: its whole folder (stage folders,
helper modules and packages at its top) and the Python modules next to it
(protocol.py, a helper at the kit's root). The kit's own test implementations,
copied there as the kit's tests grade them (gradekit.self_contained), must score
what they score anywhere; and every message names the folder given, not the copy.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from gradekit import KIT, stage_maximum

sys.path.insert(0, str(KIT))
from grader import isolation  # noqa: E402

pytestmark = pytest.mark.skipif(
    not isolation.possible(),
    reason="needs root on Linux: only there do the programs run as a user of their own "
           "who may be unable to read the implementation")

STAGE1_POINTS, _ = stage_maximum("1_echo")
JUNK = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".pytest_cache")


@pytest.fixture(scope="module")
def private_kit():
    """The kit, copied into a folder of mode 0700 (root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="chatkit-private-"))
    assert folder.stat().st_mode & 0o777 == 0o700
    kit = folder / "kit"
    shutil.copytree(KIT, kit, ignore=JUNK)
    yield kit
    shutil.rmtree(folder, ignore_errors=True)


# Graded by the private kit's own tests/gradekit.py, as its tests do: each of these
# runs the reference solution for some programs, and scores full marks on stage 1.
GRADE_THE_TEST_IMPLEMENTATIONS = """
import json, sys
from gradekit import IMPLS, grade_many
jobs = [(IMPLS / "launcher", ["--stage", "1"], {}),
        (IMPLS / "textmode", ["--stage", "1"], {}),
        (IMPLS / "chatty", ["--stage", "1"], {}),
        (IMPLS / "pathological", ["--stage", "1"], {"CHATKIT_PATHOLOGY": "client-chatty"})]
print(json.dumps([[str(g.impl), g.score, g.max_score, g.output] for g in grade_many(jobs, 2)]))
"""


def test_the_test_implementations_graded_from_a_private_clone(private_kit):
    done = subprocess.run([sys.executable, "-c", GRADE_THE_TEST_IMPLEMENTATIONS],
                          cwd=private_kit / "tests", capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    for impl, score, maximum, output in json.loads(done.stdout):
        assert "this grading's own" in output, output[-2000:]   # not root: the copy was used
        assert (score, maximum) == (STAGE1_POINTS, STAGE1_POINTS), "%s:\n%s" % (impl,
                                                                               output[-3000:])
        assert "/run/chatkit/copies" not in output, output[-3000:]


def test_a_submission_using_helpers_graded_from_a_private_folder(private_kit):
    """A student's kit whose client imports a helper module from the kit's root (next to
    protocol.py) and whose server imports a package at the top of its stages/, with a
    missing stage: full marks, and the messages name the folder given."""
    theirs = private_kit.parent / "their-kit"
    shutil.copytree(KIT / "solutions" / "1_echo", theirs / "stages" / "1_echo", ignore=JUNK)
    shutil.copy(KIT / "protocol.py", theirs / "protocol.py")
    (theirs / "chathelp.py").write_text("GREETING = 'hello'\n")
    (theirs / "stages" / "common").mkdir()
    (theirs / "stages" / "common" / "__init__.py").write_text("READY = True\n")
    for script, module in (("chat_client.py", "chathelp"), ("chat_server.py", "common")):
        path = theirs / "stages" / "1_echo" / script
        code = path.read_text()
        line = next(l for l in code.splitlines(keepends=True)   # after the sys.path lines
                    if l.startswith(("import server", "import client")))
        path.write_text(code.replace(line, line + "import %s  # a helper of theirs\n" % module, 1))
    results = private_kit.parent / "results.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "grader", "--impl",
                           str(theirs / "stages"), "--stage", "1", "--stage", "2",
                           "--results", str(results), "-q", "-p", "no:cacheprovider"],
                          cwd=private_kit, capture_output=True, text=True, timeout=300)
    assert "this grading's own" in done.stdout, done.stdout[-3000:]
    graded = json.loads(results.read_text())
    stage1 = [t for t in graded["tests"] if "1_echo" in t["tags"]]
    assert sum(t["score"] for t in stage1) == STAGE1_POINTS, done.stdout[-3000:]
    missing = next(t for t in graded["tests"] if t["number"] == "2.1")
    assert "a server program at %s" % (theirs / "stages" / "2_naming" / "chat_server.py") \
        in missing["output"], missing["output"]
    assert "/run/chatkit/copies" not in done.stdout + json.dumps(graded)


def test_a_readable_submission_graded_by_a_private_kit_runs_the_startup_hook(private_kit):
    """The kit where its user can't read it, the submission where everyone can (a batch's
    submission, copied to /tmp): every program still runs the grader's startup hook (the
    copy carries it). Without it, x.22 fails a client that reads text and strips "\\n"
    (the hook reads typed lines as Windows does), and the programs run with no file-size
    or core limit (tests/test_files.py reads those)."""
    from gradekit import IMPLS, self_contained
    folder = Path(tempfile.mkdtemp(prefix="chatkit-open-"))
    try:
        folder.chmod(0o755)
        impl = self_contained(IMPLS / "textmode", folder)
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        done = subprocess.run([sys.executable, "-m", "pytest", "grader", "--impl", str(impl),
                               "--check", "1.22", "-p", "no:cacheprovider"],
                              cwd=private_kit, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert "this grading's own" in done.stdout, done.stdout[-3000:]
    assert done.returncode == 0 and "✓ 1.22" in done.stdout, done.stdout[-3000:]
