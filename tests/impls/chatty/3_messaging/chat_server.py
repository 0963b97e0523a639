"""Stage 3_messaging chat server that logs about 2 KB per message: see ../chatty.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from chatty import server_main  # noqa: E402

if __name__ == "__main__":
    server_main("3_messaging")
