"""The grader's platform-specific paths, tested on Linux through their seams.

Where the grader reads the system differently on macOS or Windows, the part that
interprets what it read is a function of its own, tested here with what those
systems print; the part that reads is exercised on the system at hand.
"""

import os
import subprocess
import sys

from gradekit import KIT, wait_until

sys.path.insert(0, str(KIT))
from grader import programs  # noqa: E402


def test_descendants_follow_every_generation():
    parents = {1: 0, 10: 1, 11: 10, 12: 11, 13: 10, 20: 1, 21: 20}
    assert programs.descendants(10, parents) == {10, 11, 12, 13}
    assert programs.descendants(21, parents) == {21}
    assert programs.descendants(99, parents) == {99}


def test_ps_listing_as_macos_prints_it():
    listing = "    1     0\n  412     1\n  413   412\n garbage line\n\n"
    assert programs.parse_ps_parents(listing) == {1: 0, 412: 1, 413: 412}


def test_the_parent_map_of_this_system_holds_a_fresh_child_and_grandchild():
    """The reading side, on this system: a child and the grandchild it starts are found
    below this process (waiting, bounded, for the grandchild to exist)."""
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', " \
           "'import time; time.sleep(30)']); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        def tree():
            found = programs.descendants(os.getpid(), programs.parent_map())
            return found if len(found) >= 3 else None
        found = wait_until(tree, timeout=10)
        assert found and child.pid in found, found
    finally:
        for pid in programs.descendants(child.pid, programs.parent_map()):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        child.wait(5)


def test_ps_is_read_as_on_macos_where_ps_exists():
    """The macOS and BSD way (ps), run here where ps exists: it lists this process
    under its parent, as /proc does."""
    import shutil
    import pytest
    if shutil.which("ps") is None:
        pytest.skip("no ps on this system")
    assert programs._parents_from_ps().get(os.getpid()) == os.getppid()
