"""Stage 4_exit chat client (asyncio alternative implementation): see ../aiochat.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aiochat import client_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(client_main(stage=4))
