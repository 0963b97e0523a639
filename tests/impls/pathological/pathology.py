"""An implementation that misbehaves on purpose, to prove the grader survives it.

Every chat_server.py and chat_client.py of this directory runs `main()` below.
The environment variable CHATKIT_PATHOLOGY picks one misbehaviour; the grader
passes its environment on to the programs it starts, so a test chooses it with

    gradekit.grade(IMPLS / "pathological", env={"CHATKIT_PATHOLOGY": "server-spin"})

A server pathology makes the server misbehave while the client is the
reference client (solutions/<stage>/chat_client.py), and a client pathology the
other way round; unset, both programs are the reference ones.

Each misbehaviour is what a beginner's program really does: it never listens,
dies at once, crashes on a typo, hangs, burns the CPU, ignores Ctrl-C and
SIGTERM, leaves a child process behind, sends garbage, or prints megabytes
(that one is otherwise correct and must score full marks, like the slow starter).
"""

import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KIT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
# The reference solution: inside this folder when the kit's tests made it self-contained
# (tests/gradekit.py, self_contained), else the kit's own.
SOLUTIONS = os.path.join(HERE, "reference")
if not os.path.isdir(SOLUTIONS):
    SOLUTIONS = os.path.join(KIT, "solutions")
PATHOLOGY = os.environ.get("CHATKIT_PATHOLOGY", "")

# name: what the program does (the test file holds what the grader must say about it).
SERVER_PATHOLOGIES = {
    "server-never-listens": "sleeps forever, never listens",
    "server-exits": "exits at once with status 3",
    "server-import-crash": "raises at import (ModuleNotFoundError: a typo), before anything",
    "server-silent": "listens and accepts, never reads or answers",
    "server-spin": "spins the CPU, never listens",
    "server-spin-listening": "listens, then spins the CPU, never accepts",
    "server-ignores-sigterm": "ignores SIGTERM and SIGINT; listens and accepts, never answers",
    "server-forks": "starts a child that ignores SIGTERM and sleeps forever, then exits 0",
    "server-garbage": "listens, accepts, floods every client with garbage bytes",
    "server-chatty": "prints ~5 MB to stdout and stderr, then is the reference server (--verbose)",
    "server-slow-start": "sleeps 1.5 s, then is the reference server",
    # The three abusive ones: otherwise the reference server, plus a thread that
    # prints, allocates or forks in a loop (the grader's limits must stop them).
    "server-prints-forever": "the reference server, and a thread printing debug lines in a loop",
    "server-grows-forever": "the reference server, and a thread allocating 64 MiB every 0.1 s",
    "server-forks-forever": "the reference server, and a thread starting sleeping children in a loop",
    "server-snoops": "tries to read and write the grader's results (CHATKIT_SNOOP_RESULTS), "
                     "notes what it could do in CHATKIT_SNOOP_REPORT, then is the reference server",
}
CLIENT_PATHOLOGIES = {
    "client-never-connects": "sleeps forever, never connects",
    "client-exits": "exits at once with status 3",
    "client-import-crash": "raises at import (ModuleNotFoundError: a typo), before anything",
    "client-silent": "connects, never sends anything",
    "client-spin": "connects, then spins the CPU",
    "client-ignores-sigterm": "ignores SIGTERM and SIGINT; connects, never sends",
    "client-forks": "starts a child that ignores SIGTERM and sleeps forever, then exits 0",
    "client-garbage": "connects, floods the server with garbage bytes",
    "client-chatty": "prints ~5 MB to stdout and stderr, then is the reference client",
    "client-prints-forever": "the reference client, and a thread printing debug lines in a loop",
}
PATHOLOGIES = {**SERVER_PATHOLOGIES, **CLIENT_PATHOLOGIES}

CHATTY_BYTES = 5 * 1024 * 1024   # printed in all, half on stdout, half on stderr
SLOW_START = 1.5                 # seconds before the slow server starts listening
# The abusive ones stop by themselves somewhere, so that a grader without limits (or
# one whose limits fail) cannot take the machine down: these are far past any limit.
GROWTH_STEP = 64 * 1024 * 1024   # bytes allocated (and written to) every GROWTH_PAUSE
GROWTH_PAUSE = 0.1
GROWTH_CAP = 3 * 1024 ** 3       # 3 GiB, as in the measurement
FORK_CAP = 2000                  # children started in all, at most
CHILD_LIFE = 300                 # seconds a forked child sleeps before it exits
GARBAGE = b"\xff\xfe\x00garbage, not a header\x00" * 2048   # never starts with 4 digits


def _role():
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return {"chat_server.py": "server", "chat_client.py": "client"}.get(name)


# --- crashes at import: before anything else happens ------------------------------
if PATHOLOGY == "%s-import-crash" % _role():
    import protocl  # noqa: E402,F401  (the typo is the point: ModuleNotFoundError)


def main(role, stage):
    """Run the program `role` ("server" or "client") of `stage` ("1_echo" ...)."""
    if PATHOLOGY and PATHOLOGY not in PATHOLOGIES:
        sys.exit("CHATKIT_PATHOLOGY=%s: unknown; one of %s"
                 % (PATHOLOGY, ", ".join(sorted(PATHOLOGIES))))
    if not PATHOLOGY.startswith(role + "-"):
        reference(role, stage)
        return
    what = PATHOLOGY[len(role) + 1:]
    args = arguments()
    if what.endswith("-forever"):
        abuse = {"prints-forever": print_forever, "grows-forever": grow_forever,
                 "forks-forever": fork_forever}[what]
        threading.Thread(target=abuse, args=(role,), daemon=True).start()
        reference(role, stage)
    elif what == "snoops":
        snoop()
        reference(role, stage)
    elif what == "chatty":
        chatter(role)
        reference(role, stage, ["--verbose"] if role == "server" else [])
    elif what == "slow-start":
        time.sleep(SLOW_START)
        reference(role, stage)
    elif what in ("never-listens", "never-connects"):
        sleep_forever()
    elif what == "exits":
        sys.exit(3)
    elif what == "spin":
        if role == "client":
            keep = connect(args)   # noqa: F841  (held open while spinning)
        spin()
    elif what == "forks":
        subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child",
                          "impls/pathological %s child" % role])
        sys.exit(0)
    elif what == "ignores-sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        silent(role, args)
    elif what == "silent":
        silent(role, args)
    elif what == "spin-listening":
        keep = listen(args)    # noqa: F841
        spin()
    elif what == "garbage":
        if role == "server":
            listener = listen(args)
            while True:
                sock, _ = listener.accept()
                threading.Thread(target=flood, args=(sock,), daemon=True).start()
        flood(connect(args))
    else:
        sys.exit("CHATKIT_PATHOLOGY=%s: not implemented" % PATHOLOGY)


def reference(role, stage, extra=()):
    """Become the reference program of this stage, with our command line."""
    path = os.path.join(SOLUTIONS, stage, "chat_%s.py" % role)
    sys.argv = [path] + sys.argv[1:] + list(extra)
    sys.path.insert(0, os.path.dirname(path))   # its modules: server.py, client.py, ...
    runpy.run_path(path, run_name="__main__")


def arguments():
    """--host and --port, as the grader passes them (the kit's defaults)."""
    host, port = None, 7777
    argv = sys.argv[1:]
    for i, arg in enumerate(argv[:-1]):
        if arg == "--host":
            host = argv[i + 1]
        elif arg == "--port":
            port = int(argv[i + 1])
    return host, port


def listen(args):
    host, port = args
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host or "0.0.0.0", port))
    listener.listen()
    print("Chat server (pathological: %s) listening on %s:%d" % (PATHOLOGY, host, port),
          flush=True)
    return listener


def connect(args):
    host, port = args
    return socket.create_connection((host or "127.0.0.1", port))


def silent(role, args):
    """Hold connections open and never say a word."""
    if role == "client":
        keep = connect(args)   # noqa: F841
        sleep_forever()
    listener = listen(args)
    held = []
    while True:
        sock, _ = listener.accept()
        held.append(sock)


def flood(sock):
    try:
        while True:
            sock.sendall(GARBAGE)
    except OSError:
        pass


def chatter(role):
    """Print CHATTY_BYTES of debug lines, half to stdout, half to stderr, in big writes."""
    line = "debug: pathological chatty %s is warming up, line %%07d %s\n" % (role, "." * 40)
    count = CHATTY_BYTES // 2 // len(line % 0)
    for stream in (sys.stdout, sys.stderr):
        for start in range(0, count, 2000):
            stream.write("".join(line % n for n in range(start, min(start + 2000, count))))
            stream.flush()


def print_forever(role):
    """A debug line printed again and again (a print inside the select loop), with a
    buffer in it, as beginners print them: about 1 KB a line."""
    waiting = bytearray(b"." * 1000)
    count = 0
    while True:
        count += 1
        print("debug: %s still in its loop, round %d, buffer=%r" % (role, count, waiting))


def grow_forever(role):
    """Keep everything ever allocated (a list that is appended to and never emptied)."""
    kept = []
    while len(kept) * GROWTH_STEP < GROWTH_CAP:
        kept.append(b"x" * GROWTH_STEP)   # written to, so really resident, not just reserved
        time.sleep(GROWTH_PAUSE)
    sleep_forever()


def fork_forever(role):
    """Start a child that sleeps, again and again, never waiting for one to end."""
    for _ in range(FORK_CAP):
        if hasattr(os, "fork"):
            if os.fork() == 0:
                time.sleep(CHILD_LIFE)
                os._exit(0)
        else:
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(%d)" % CHILD_LIFE])
    sleep_forever()


def snoop():
    """What a student's program could do to the grader's results: one JSON line."""
    results = os.environ.get("CHATKIT_SNOOP_RESULTS", "")
    found = {"uid": os.getuid() if hasattr(os, "getuid") else None}
    tries = {"read": lambda: open(results, "rb").read(),
             "write": lambda: open(results, "ab").close(),
             "create": lambda: open(os.path.join(os.path.dirname(results), "planted"), "x").close()}
    for name, attempt in tries.items():
        try:
            attempt()
            found[name] = True
        except OSError:
            found[name] = False
    with open(os.environ["CHATKIT_SNOOP_REPORT"], "a") as report:
        report.write(json.dumps(found) + "\n")


def spin():
    while True:
        pass


def sleep_forever():
    while True:
        time.sleep(60)


def child():
    """The forked child: ignores SIGTERM and Ctrl-C, and outlives its parent."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sleep_forever()


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    child()
