"""The grader's command-line options, and their checking before any grading starts.

A wrong option is one usage line at once (pytest.UsageError), never a traceback
after the whole grading.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from grader import attach
from grader.limits import make_limits
from grader.stages import DECLARED, STAGES, stages_named


def add_options(parser) -> None:
    """The chatkit group of options (`pytest grader --help` lists them)."""
    group = parser.getgroup("chatkit", "chat kit grader")
    group.addoption("--impl", metavar="DIR", default=None,
                    help="implementation directory to grade (default: the kit's stages/)")
    group.addoption("--stage", action="append", default=[], metavar="N",
                    help="grade only this stage: its number (1-%d), folder or name (%s, "
                         "%s); repeat or comma-separate for several"
                         % (len(DECLARED), DECLARED[-1].folder, DECLARED[-1].name))
    group.addoption("--results", metavar="FILE", default=None,
                    help="also write the run as Gradescope results.json to FILE")
    group.addoption("--classroom-results", metavar="FILE", default=None,
                    help="also write the run as GitHub Classroom's grading reporter reads it "
                         "(and, in a GitHub Actions step, as the step's output 'result')")
    # Limits on student programs (grader/limits.py, docs/teachers.md § Limits on student programs).
    group.addoption("--output-limit", metavar="MB", default="16",
                    help="stop a program that prints more than MB megabytes (default 16; 0: none)")
    group.addoption("--memory-limit", metavar="MB", default="256",
                    help="stop a program that uses more than MB megabytes of memory "
                         "(default 256; 0: none; Linux)")
    group.addoption("--max-processes", metavar="N", default="50",
                    help="processes the programs may have running at once, all together "
                         "(default 50; 0: no limit; Linux)")
    group.addoption("--disk-limit", metavar="MB", default="64",
                    help="what the programs may write to files, all together (default 64; "
                         "0: none); each file at most --output-limit")
    group.addoption("--run-as", metavar="USER", default=None,
                    help="run the programs as USER (POSIX, grader running as root)")
    attach.add_options(group)   # --check, --attach, --patience, --show-exchange


def parse_stages(values: list[str]) -> list[str]:
    """['2', 'exit'] -> ['2_naming', '4_exit']; all stages when nothing is given."""
    try:
        return stages_named(values) or list(STAGES)
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None


def implementation(option: str | None, default: Path) -> Path:
    """--impl DIR, resolved (default: the kit's stages/), checked to be a folder."""
    impl = Path(option or default).resolve()
    if not impl.is_dir():
        raise pytest.UsageError("--impl %s: no such directory" % impl)
    return impl


def set_limits(config, grader):
    """The limits on student programs (limits.py), checked before any program starts."""
    try:
        limits = make_limits(config.getoption("--output-limit"), config.getoption("--memory-limit"),
                             config.getoption("--max-processes"), config.getoption("--run-as"),
                             grader.impl, grader.stages, grader.results_path,
                             config.getoption("--disk-limit"))
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    if limits.copy is not None:   # the programs' own user reads a copy (grader/isolation.py)
        grader.run_from = limits.copy
    grader.who = limits.who
    return limits


def results_path(option: str | None, name: str = "--results") -> Path | None:
    """--results FILE, checked before any grading: its folder is created if need be,
    so a typo costs one line now, not the whole run's results at the end."""
    if option is None:
        return None
    path = Path(option).resolve()
    if path.is_dir():
        raise pytest.UsageError("%s %s: that is a folder; give a file name, "
                                "e.g. %s" % (name, option, Path(option) / "results.json"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise pytest.UsageError("%s %s: cannot create its folder (%s)"
                                % (name, option, error.strerror or error)) from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise pytest.UsageError("%s %s: cannot write there (permission denied)" % (name, option))
    return path
