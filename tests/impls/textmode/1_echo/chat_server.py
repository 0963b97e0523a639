"""Stage 1_echo chat server: the reference server, unchanged (see ../textmode.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from textmode import server_main  # noqa: E402

if __name__ == "__main__":
    server_main()
