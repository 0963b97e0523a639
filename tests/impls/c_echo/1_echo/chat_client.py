"""Stage 1 chat client, written in C (chat_client.c): this file runs the built program.

Build it first, in this folder: cc -O2 -o chat_client chat_client.c
"""
import os
import sys

program = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chat_client")
if not os.path.isfile(program):
    sys.exit("%s is not built: cc -O2 -o %s %s.c" % (program, program, program))
os.execv(program, [program] + sys.argv[1:])   # the same process, so the same pid
