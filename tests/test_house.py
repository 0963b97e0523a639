"""The kit's structure keeps its promises: the rooms stay as they were laid out.

* The grader's core (everything in grader/ but the pytest plugin, the check
  declarations and the checks themselves) imports no pytest.
* The stages are declared once in the code (grader/stages.py): no other code of
  the grader names a stage folder.
* The handout's tools (grader/teach/) are not needed by the student's grader.
* grader/conftest.py stays the plugin's face: pytest's hooks and the fixtures,
  each handing its job to a room of its own (grading.py, report.py, ...).
* The grader's modules import one another one way only (no circle, not even one
  for type hints alone), and none takes another's private name (_x).
* The startup hook, run inside the student's programs, imports none of them.
* The wire (grader/wire.py) is the lowest layer: it imports nothing of the grader
  above framing and sockdiag; the client side borrows nothing from the server side.
* No function of the grader is dead code.
"""

import ast
import re
from collections import Counter

from gradekit import KIT, STAGES

PYTEST_SIDE = {"conftest.py", "options.py", "timer.py",   # the plugin, its options, the
               "checks.py", "attach.py"}   # check's time limit (pytest-timeout's hooks), how a
                                           # check is declared, and the plugin's --attach part


def students_grader() -> list:
    """The grader's modules that students run: grader/ and its system/ package (not
    teach/, the teachers' tools, nor the startup hook, which runs in their programs)."""
    return sorted((KIT / "grader").glob("*.py")) + sorted((KIT / "grader" / "system").glob("*.py"))


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
    core = [p for p in students_grader()
            if p.name not in PYTEST_SIDE and not p.name.startswith("test_")]
    assert len(core) >= 10, core
    importing = [p.name for p in core if "pytest" in imported_modules(p)]
    assert not importing, "core modules that import pytest: %s" % importing


def test_the_plugin_is_a_face_its_jobs_have_rooms():
    """conftest.py holds the hooks and the fixtures, each a few lines that hand the job
    on; a job growing there (a class, a long function) belongs in a room of its own."""
    path = KIT / "grader" / "conftest.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    classes = [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    assert not classes, "classes in grader/conftest.py: %s" % classes
    long = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)
            and node.end_lineno - node.lineno + 1 > 30]
    assert not long, "functions of over 30 lines in grader/conftest.py: %s" % long
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= 250, "grader/conftest.py has %d lines" % lines
    upward = [p.name for p in (KIT / "grader").rglob("*.py")
              if {"grader.conftest", "conftest"} & imported_modules(p)]
    assert not upward, "modules that import the plugin (its rooms must not): %s" % upward


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
    for path in students_grader():
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


def grader_imports() -> dict[str, set[tuple[str, str]]]:
    """{module: {(grader module it imports, name it takes or '')}} for every module of
    grader/ (its packages too), from every import in it: at its top, in a function,
    or for type hints alone (a circle drawn for the type checker is a circle still)."""
    def name_of(path):
        parts = list(path.relative_to(KIT).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    paths = {name_of(path): path for path in (KIT / "grader").rglob("*.py")}
    found = {}
    for module, path in paths.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        taken = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                taken |= {(alias.name, "") for alias in node.names if alias.name in paths}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                for alias in node.names:
                    if "%s.%s" % (base, alias.name) in paths:
                        taken.add(("%s.%s" % (base, alias.name), ""))
                    elif base in paths:
                        taken.add((base, alias.name))
        found[module] = {(other, name) for other, name in taken if other != module}
    return found


def test_no_grader_module_imports_itself_back():
    """limits.py and programs.py once imported each other (programs the limits, limits
    the Program): a module in a circle can't be read, tested or moved alone."""
    graph = {module: {other for other, _ in taken} for module, taken in grader_imports().items()}
    assert len(graph) >= 30, sorted(graph)
    circles, state, path = [], {}, []

    def visit(module):
        state[module] = "on the path"
        path.append(module)
        for other in sorted(graph.get(module, ())):
            if state.get(other) == "on the path":
                circles.append(" -> ".join(path[path.index(other):] + [other]))
            elif other not in state:
                visit(other)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not circles, "import circles among the grader's modules:\n" + "\n".join(circles)


def test_no_grader_module_takes_another_ones_private_name():
    """A name with a leading underscore is its module's own: one that another module
    needs is made public (programs.py once took limits.py's _kill)."""
    taking = ["%s takes %s.%s" % (module, other, name)
              for module, taken in sorted(grader_imports().items())
              for other, name in sorted(taken) if name.startswith("_")]
    assert not taking, "\n".join(taking)


def test_the_startup_hook_stands_alone():
    """grader/startup/sitecustomize.py runs inside the student's program, as that
    program's user, before its first line: it can't count on the grader being there."""
    hook = KIT / "grader" / "startup" / "sitecustomize.py"
    taken = [module for module in imported_modules(hook) if module.split(".")[0] == "grader"]
    assert not taken, taken


def grader_modules(module: str) -> set[str]:
    """The grader's modules `module` ('grader.wire') imports."""
    return {other for other, _ in grader_imports()[module]}


def test_the_wire_imports_nothing_above_it():
    """grader/wire.py (framing, scripted clients, the transcript) calls no upper layer:
    how a failure is told in full (the exit diagnosis, where a program is) is
    grader/failure.py's, which the wire never imports."""
    assert grader_modules("grader.wire") <= {"grader.framing", "grader.sockdiag"}


def test_the_client_side_borrows_nothing_from_the_server_side():
    """Who holds a socket is grader/holders.py's, below both sides."""
    assert "grader.serverside" not in grader_modules("grader.clientside")


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
