"""Stage 2_naming chat server (asyncio alternative implementation): see ../aiochat.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aiochat import server_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(server_main(stage=2))
