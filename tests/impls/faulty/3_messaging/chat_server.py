"""Stage 3_messaging chat server with switchable mistakes (CHATKIT_FAULT): see ../faulty_chat.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from faulty_chat import server_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(server_main(stage=3))
