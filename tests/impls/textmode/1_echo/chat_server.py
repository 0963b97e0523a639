"""Stage 1_echo chat server: the reference server, unchanged."""
import os
import runpy

KIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..")

if __name__ == "__main__":
    runpy.run_path(os.path.join(KIT, "solutions", "1_echo", "chat_server.py"), run_name="__main__")
