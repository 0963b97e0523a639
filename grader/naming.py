"""The implementation's files named as the one who started the grading gave them.

The grader's messages name a student's file by the implementation folder's own
name, its stage folder and the file (`frank/1_echo/chat_server.py`): short,
and true when the grading ran from the folder that holds the implementation
(`pytest grader`, which names `stages/1_echo/...`). Given `--impl
submissions/frank`, that short name is a path nobody has; `given()` names
the folder as it was given instead (`submissions/frank/1_echo/chat_server.py`),
so a path in a failure is one the reader can open. `python -m grader batch`
and the platforms' autograders give the grader the private copy they graded,
and name it back as the student handed it in (grader/teach/submissions.py).
"""

from __future__ import annotations

import os
import re

from grader.stages import STAGES


def spelled(option: str | None) -> str | None:
    """`--impl` as given, tidied (`subs/frank/` and `subs/./frank` are `subs/frank`, in
    the system's spelling: `subs\\frank` on Windows, where the folder given to `batch`'s
    grader is named back the same way); None when no folder was given (the kit's own
    `stages/`, named as it is)."""
    if not option:
        return None
    return os.path.normpath(option)


def given(text: str, impl_name: str, spelling: str | None) -> str:
    """`text` with every short name of the implementation's files
    (`<impl_name>/<stage>/...`, not part of a longer path) spelled as given."""
    if not spelling or spelling == impl_name or not impl_name:
        return text
    pattern = re.compile(r"(?<![\w/\\.~-])%s(?=/(?:%s)/)"
                         % (re.escape(impl_name), "|".join(map(re.escape, STAGES))))
    return pattern.sub(lambda _: spelling, text)
