"""The chat kit's autograder: `pytest grader` (see README § The grader)."""
