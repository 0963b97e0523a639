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

STAGES = ["1_echo", "2_naming", "3_messaging", "4_exit"]


def stages_named(values: list[str]) -> list[str]:
    """['2', 'exit,1_echo'] -> ['1_echo', '2_naming', '4_exit'] (in stage order); [] for none.

    A stage is named by its folder, its number or its name ('2_naming', '2',
    'naming'); several may be comma-separated. Raises ValueError for any other.
    """
    chosen = []
    for value in (v.strip() for value in values for v in value.split(",") if v.strip()):
        matches = [s for s in STAGES if value in (s, s[0], s[2:])]
        if not matches:
            raise ValueError("--stage %s: no such stage; use 1-4 or one of %s"
                             % (value, ", ".join(STAGES)))
        chosen += matches
    return [s for s in STAGES if s in chosen]


def check(number: int, title: str, points: int = 1, needs: int | None = 1):
    """Mark a test function as a scored check of the grader."""
    if needs == number:
        needs = None
    return pytest.mark.check(number=number, title=title, points=points, needs=needs)
