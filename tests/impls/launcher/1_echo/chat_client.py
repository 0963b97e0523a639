"""Stage 1_echo chat client: the reference client, unchanged (see ../launcher.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from launcher import client_main  # noqa: E402

if __name__ == "__main__":
    client_main()
