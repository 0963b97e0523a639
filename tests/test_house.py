"""The kit's structure keeps its promises: the rooms stay as they were laid out.

* The grader's core (everything in grader/ but the pytest plugin, the check
  declarations and the checks themselves) imports no pytest.
* The stages are declared once in the code (grader/stages.py): no other code of
  the grader names a stage folder.
* The handout's tools (grader/teach/) are not needed by the student's grader.
* The wire (grader/wire.py) is the lowest layer: it imports nothing of the grader
  above framing and sockdiag; the client side borrows nothing from the server side.
* No function of the grader is dead code.
"""

import ast
import re
from collections import Counter

from gradekit import KIT, STAGES

PYTEST_SIDE = {"conftest.py", "checks.py", "attach.py"}   # the plugin (attach.py: its --attach
                                                        # part), and how a check is declared


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_graders_core_imports_no_pytest():
    core = [p for p in (KIT / "grader").glob("*.py")
            if p.name not in PYTEST_SIDE and not p.name.startswith("test_")]
    assert len(core) >= 10, core
    importing = [p.name for p in core if "pytest" in imported_modules(p)]
    assert not importing, "core modules that import pytest: %s" % importing


def code_strings(path) -> list[tuple[int, str]]:
    """(line, text) of every string literal in a module's code, not its docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant):
            docstrings.add(id(body[0].value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def test_the_stages_are_declared_once():
    """No code of the grader names a stage folder but the stages' declaration: the others
    read it (grader/stages.py), so that a teacher's stage is one declaration."""
    naming = []
    for path in sorted((KIT / "grader").rglob("*.py")):
        if path.name == "stages.py":
            continue
        for line, text in code_strings(path):
            if any(stage in text for stage in STAGES):
                naming.append("%s:%d %r" % (path.relative_to(KIT).as_posix(), line, text[:60]))
    assert not naming, "stage folders named outside grader/stages.py:\n" + "\n".join(naming)


def test_the_students_grader_needs_no_teachers_tool():
    for path in (KIT / "grader").glob("*.py"):
        modules = imported_modules(path)
        assert not any(m.startswith("grader.teach") for m in modules), path.name


def test_the_readme_ci_and_every_systems_workflow_run_the_same_two_commands():
    """The README's set-up and test commands are what .ci/run runs, and what the kit's
    workflow runs on Linux, macOS and Windows (.github/workflows/kit.yml)."""
    import re
    readme = (KIT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Set up and test.*?```\n(.*?)```", readme, re.S).group(1)
    commands = [line.strip() for line in block.splitlines() if line.strip()]
    assert commands == ["python -m pip install -r requirements.txt", "python -m pytest tests"]
    ci = [line.strip() for line in (KIT / ".ci" / "run").read_text().splitlines()
          if line.startswith("python")]
    assert ci == commands
    workflow = (KIT / ".github" / "workflows" / "kit.yml").read_text(encoding="utf-8")
    assert re.findall(r"run: (.+)", workflow) == commands
    systems = re.search(r"os: \[(.*?)\]", workflow).group(1)
    assert [name.strip() for name in systems.split(",")] == [
        "ubuntu-latest", "macos-latest", "windows-latest"]


def grader_modules(path) -> set[str]:
    """The grader's modules a module imports, `from grader import x` as 'grader.x'."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("grader.")}
        elif isinstance(node, ast.ImportFrom) and node.module == "grader":
            found |= {"grader." + alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("grader."):
            found.add(node.module)
    return found


def test_the_wire_imports_nothing_above_it():
    """grader/wire.py (framing, scripted clients, the transcript) calls no upper layer:
    how a failure is told in full (the exit diagnosis, where a program is) is
    grader/failure.py's, which the wire never imports."""
    assert grader_modules(KIT / "grader" / "wire.py") <= {"grader.framing", "grader.sockdiag"}


def test_the_client_side_borrows_nothing_from_the_server_side():
    """Who holds a socket is grader/holders.py's, below both sides."""
    assert "grader.serverside" not in grader_modules(KIT / "grader" / "clientside.py")


def test_every_function_of_the_grader_is_used():
    """Each function or method defined in grader/ is named somewhere in grader/ or tests/
    besides its own definitions (pytest's hooks and the checks themselves aside)."""
    files = [*(KIT / "grader").rglob("*.py"), *(KIT / "tests").rglob("*.py")]
    words = Counter(word for path in files
                    for word in re.findall(r"\w+", path.read_text(encoding="utf-8")))
    defined = Counter()
    for path in (KIT / "grader").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                defined[node.name] += 1
    unused = sorted(name for name, count in defined.items()
                    if words[name] <= count and not name.startswith(("test_", "pytest_", "__")))
    assert not unused, "functions of the grader nothing uses: %s" % unused
