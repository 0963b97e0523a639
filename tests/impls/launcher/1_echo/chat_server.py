"""Stage 1_echo chat server behind a launcher: see ../launcher.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from launcher import launch  # noqa: E402

if __name__ == "__main__":
    sys.exit(launch())
