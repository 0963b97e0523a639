"""How a check is declared: its number, its title, its points, what it needs.

    @check(3, "Renaming releases the old name", points=2)
    def test_rename_releases_old_name(server): ...

The number is local to the stage (the stage comes from the module's STAGE, or
from a `stage` parameter), so this is check 2.3 in test_2_naming.py. Like
check50's dependencies, a check `needs` an earlier one of its stage (by
default check 1, the basic exchange): if that one failed, this one fails at
once with "blocked by …" instead of waiting out its own timeouts.
"""

import pytest


def check(number: int, title: str, points: int = 1, needs: int | None = 1):
    """Mark a test function as a scored check of the grader."""
    if needs == number:
        needs = None
    return pytest.mark.check(number=number, title=title, points=points, needs=needs)
