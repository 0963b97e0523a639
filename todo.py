"""Stand-ins for the TODOs of the skeletons: what runs until a TODO is done.

Each TODO in stages/ comes with a stand-in that keeps the program running:
it calls not_implemented(), which says once, on standard error, which TODO is
not done yet (you see it in the program's window, and the grader shows it
when a check fails), and returns an ERROR reply that names it, which a
server's stand-in sends in place of the real reply.  Code whose TODOs are all
done calls none of this.
"""

import sys

import protocol

reported = set()   # the TODOs already reported


def not_implemented(todo, what, section=None):
    """Say once that TODO `todo` ("2.5") is not done yet; return an ERROR about it.

    `what` tells what does not work yet; `section` is the part of
    docs/students.md that explains it (default: the TODO's stage).
    """
    if todo not in reported:
        reported.add(todo)
        section = section or "Stage " + todo.split(".")[0]
        print("TODO %s not implemented yet: %s (docs/students.md § %s)" % (todo, what, section),
              file=sys.stderr, flush=True)
    return protocol.refusal("not implemented yet: %s (TODO %s)" % (what, todo))
