"""Stage 1_echo chat server of the pathological implementation: see ../pathology.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pathology  # noqa: E402

if __name__ == "__main__":
    pathology.main("server", "1_echo")
