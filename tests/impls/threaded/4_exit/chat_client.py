"""Stage 4_exit chat client (threaded alternative implementation): see ../chatcore.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from chatcore import client_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(client_main(stage=4))
