"""Stage 4_exit chat client: the reference client, unchanged (see ../chatty.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from chatty import client_main  # noqa: E402

if __name__ == "__main__":
    client_main("4_exit")
