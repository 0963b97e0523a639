"""How many clients, how fast: `python -m grader load`.

    python -m grader load --impl solutions --stage 3 --clients 1000 --seconds 5
    python -m grader load --port 7777 --stage 1          # a server already running

Starts the stage's server (a real process in its own process group, on a port
the OS picks; stopped at the end however the run ends), connects the clients,
names them where the stage has names, and runs the workload for the given
seconds: stage 1 every client checks its echoes; stages 3-4 every client sends
`MSG` to another and every `FROM` and `SENT` is checked (right recipient, right
text, in order per sender). It prints a progress line while it runs, then the
clients connected (and why the others were not), messages sent, delivered,
lost and wrong, the throughput and the delivery latency, and who was the
limit: the server or this tool (each one's CPU time against the wall time).

The clients run in worker processes (grader/teach/loadgen.py), each owning a share of
them on non-blocking sockets with one selector. One worker is used where one
processor is all that is free; more where there are more processors, or where
one process may not open enough sockets.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from pathlib import Path

from grader.stages import DECLARED, stage, stages_named
from grader.system import POSIX, cpu_seconds, open_files_limit
from grader.teach import loadgen

# grader.serverside (how the grader starts a server and waits for it) is imported where
# a server is started: a usage error or --port need not wait for it.

# The stages with traffic to load, as declared (grader/stages.py): echoes, or MSG between
# named clients. (Stage 2 has no traffic between clients.)
LOADABLE = [s for s in DECLARED if s.traffic is not None]
WINDOWS_SELECT_LIMIT = 500   # sockets one worker watches on Windows (select() takes 512)
FD_RESERVE = 64           # files a worker keeps for itself (pipes, selector, Python's own)
CLIENTS_PER_WORKER = 50   # fewer clients than this are not worth a process of their own
SERVER_MEMORY = 1024 ** 3   # the server's memory limit (grading: 256 MB); see start_server
BUSY = 0.90               # a process busy this much of the time is the limit
READY_GRACE = 15.0        # seconds past a worker's own time limit to connect (and start)
RESULT_GRACE = 15.0       # seconds past the run (and its drain) to wait for the workers' results
PROGRESS_EVERY = 1.0      # seconds between two progress lines


class UsageError(Exception):
    """A bad command line: reported as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="python -m grader load",
                    description="Load a chat server: many clients, checked messages, "
                                "throughput and latency.")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--impl", metavar="DIR",
                       help="implementation directory: its STAGE/chat_server.py is started")
    where.add_argument("--port", type=int, metavar="P",
                       help="load a server already running on this port (see --host)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="with --port: where the server runs (default 127.0.0.1)")
    parser.add_argument("--stage", required=True, metavar="N",
                        help="%s (or %s)" % (", ".join(str(s.number) for s in LOADABLE),
                                             ", ".join(s.folder for s in LOADABLE)))
    parser.add_argument("--clients", type=int, default=100, metavar="C",
                        help="clients to connect (default 100)")
    parser.add_argument("--seconds", type=float, default=5.0, metavar="S",
                        help="how long the messages flow (default 5)")
    parser.add_argument("--in-flight", type=int, default=1, metavar="K",
                        help="messages each client keeps on their way at once (default 1)")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="processes sharing the clients (default: chosen from the "
                             "processors and the open-files limit)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    loaded = loadable_stage(args.stage)
    args.stage, args.echo = loaded.number, loaded.traffic == "echo"
    smallest = 1 if args.echo else 2
    if args.clients < smallest:
        raise UsageError("--clients must be at least %d in stage %d" % (smallest, args.stage))
    if not 0 < args.seconds <= 3600:
        raise UsageError("--seconds must be more than 0 and at most 3600")
    if not 1 <= args.in_flight <= 100:
        raise UsageError("--in-flight must be between 1 and 100")
    if args.workers < 0 or (args.workers and args.workers * smallest > args.clients):
        raise UsageError("--workers must be between 1 and %d for %d clients"
                         % (args.clients // smallest, args.clients))
    if args.workers and windows_workers_too_few(args.clients, args.workers):
        raise UsageError("on Windows one worker watches at most %d clients (select() takes "
                         "512 sockets): use --workers %d or more, or leave it out"
                         % (WINDOWS_SELECT_LIMIT, math.ceil(args.clients / WINDOWS_SELECT_LIMIT)))
    if args.port is not None and not 0 < args.port < 65536:
        raise UsageError("--port must be between 1 and 65535")
    if args.impl is not None:
        script = Path(args.impl) / loaded.folder / "chat_server.py"
        if not script.is_file():
            raise UsageError("no server to start: %s does not exist" % script)
        args.script = script
    return args


def windows_workers_too_few(clients: int, workers: int, system: str = os.name) -> bool:
    return system == "nt" and math.ceil(clients / workers) > WINDOWS_SELECT_LIMIT


def loadable_stage(value: str):
    """'3', '3_messaging' or 'messaging' -> stage 3's declaration (the grader's own
    stage names); a usage error for a stage with no traffic to load."""
    numbers = ", ".join(str(s.number) for s in LOADABLE)
    try:
        named = stages_named([value])
    except ValueError:
        named = []
    if len(named) != 1:
        raise UsageError("--stage %s: no such stage; use %s" % (value, numbers))
    declared = stage(named[0])
    if declared.traffic is None:
        raise UsageError("stage %d (%s) has no traffic between clients to load: use stage %s"
                         % (declared.number, declared.title, numbers))
    return declared


# --- the server -----------------------------------------------------------------

def start_server(script: Path):
    """Start the server on a free port the way every check does (serverside.py: the
    same start, the same bounded wait until it listens); return it (a Program) and
    its port.

    It runs under the grader's limits, with more memory than grading gives: 1 GB
    (address space is not limited: a thread per client reserves 8 MB of it for
    each thread's stack)."""
    from grader.limits import Limits
    from grader.programs import Sandbox
    from grader.serverside import ServerUnderTest
    from grader.failure import Conversation
    from grader.wire import CheckFailed
    sandbox = Sandbox(Limits(memory=SERVER_MEMORY))
    server = ServerUnderTest(script.parent, Conversation(), sandbox, spares=False)
    try:
        server.start()
    except CheckFailed as failure:
        problem = str(failure)
    else:
        server.close_probe()
        return server.program, server.port
    if server.program is not None:
        server.program.stop()
    raise RuntimeError("the server %s did not start:\n%s" % (script, problem))


# --- this tool's own limits ---------------------------------------------------

def raise_open_files_limit() -> int | None:
    """Raise our soft open-files limit as far as the hard one allows; return it
    (None where there is no such limit to read, e.g. on Windows)."""
    try:
        import resource   # POSIX only
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass   # e.g. macOS refuses more than OPEN_MAX: keep what we have
    return None if soft == resource.RLIM_INFINITY else soft


def choose_workers(args, files_limit: int | None, system: str = os.name) -> int:
    """Enough processes that each can open its sockets (and, on Windows, watch them:
    its select() takes at most 512), and one per free processor when there are
    clients enough to share (a server we start needs one processor: on a 2-core
    machine, one worker)."""
    smallest = 1 if args.echo else 2
    by_files = 1
    if files_limit is not None:
        by_files = math.ceil(args.clients / max(smallest, files_limit - FD_RESERVE))
    if system == "nt":
        by_files = max(by_files, math.ceil(args.clients / WINDOWS_SELECT_LIMIT))
    free_cpus = (os.cpu_count() or 1) - (1 if args.impl else 0)
    by_cpus = max(1, min(free_cpus, args.clients // CLIENTS_PER_WORKER))
    return max(1, min(max(by_files, by_cpus), args.clients // smallest))


# --- the run ------------------------------------------------------------------

def share(clients: int, workers: int) -> list[list[str]]:
    """The clients' names, split as evenly as can be between the workers."""
    names = []
    for w in range(workers):
        first, last = clients * w // workers, clients * (w + 1) // workers
        names.append(["w%dc%d" % (w + 1, i) for i in range(first, last)])
    return names


class Progress:
    """One line that keeps being rewritten on a terminal (a new line each time elsewhere)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = False

    def show(self, text: str) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K" + text)
            self.shown = True
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def end(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.shown = False


class Run:
    """The workers, and what they report."""

    def __init__(self, args, host: str, port: int) -> None:
        self.args = args
        context = multiprocessing.get_context("spawn")   # the same on every system
        self.pipes, self.processes = [], []
        for names in share(args.clients, args.workers):
            ours, theirs = context.Pipe()
            spec = {"host": host, "port": port, "echo": args.echo, "names": names,
                    "in_flight": args.in_flight, "seconds": args.seconds}
            process = context.Process(target=loadgen.worker_main, args=(theirs, spec),
                                      daemon=True)
            process.start()
            theirs.close()
            self.pipes.append(ours)
            self.processes.append(process)
        self.progress = {}   # pipe -> (sent, delivered in the window, wrong)

    def collect(self, kind: str, timeout: float, on_progress=None) -> list:
        """Wait (at most `timeout` s) for one `kind` message from every worker."""
        answers = {}
        deadline = time.monotonic() + timeout
        while len(answers) < len(self.pipes):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("%d of %d load workers did not report within %.0f s"
                                   % (len(self.pipes) - len(answers), len(self.pipes), timeout))
            waiting = [p for p in self.pipes if p not in answers]
            for pipe in multiprocessing.connection.wait(waiting, timeout=min(left, 0.25)):
                try:
                    message = pipe.recv()
                except EOFError:
                    raise RuntimeError("a load worker ended without reporting") from None
                if message[0] == "error":
                    raise RuntimeError("a load worker failed:\n" + message[1])
                if message[0] == "progress":
                    self.progress[pipe] = message[1:]
                elif message[0] == kind:
                    answers[pipe] = message[1:]
            if on_progress is not None:
                on_progress()
        return [answers[p] for p in self.pipes]

    def go(self) -> None:
        for pipe in self.pipes:
            pipe.send("go")

    def stop(self) -> None:
        """End every worker, whatever state it is in (bounded)."""
        for pipe in self.pipes:
            pipe.close()
        for process in self.processes:
            process.join(timeout=2.0)
            if process.is_alive():
                process.kill()
                process.join(timeout=2.0)
        if not any(process.is_alive() for process in self.processes):
            stop_resource_tracker()   # it waits for every holder of its pipe: workers too


def stop_resource_tracker() -> None:
    """Starting the workers ("spawn") also started multiprocessing's helper process,
    the resource tracker. It would end a moment after this tool does; end it now and
    wait for it, so that nothing this tool started outlives it."""
    try:
        from multiprocessing import resource_tracker
        stop = getattr(resource_tracker._resource_tracker, "_stop", None)
        if stop is not None:
            stop()
    except Exception:   # a private helper of multiprocessing: never fail over it
        pass


def percentile(ordered, fraction: float) -> float | None:
    """Nearest-rank percentile of a sorted sequence (None if empty)."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def merge(results: list[dict]) -> dict:
    total = {key: sum(r[key] for r in results)
             for key in ("connected", "sent", "delivered", "in_window", "acks", "wrong",
                         "lost_deliveries", "lost_replies")}
    latencies = []
    for r in results:
        latencies.extend(memoryview(r["latencies"]).cast("d"))
    latencies.sort()
    total["p50"] = percentile(latencies, 0.50)
    total["p99"] = percentile(latencies, 0.99)
    total["examples"] = [e for r in results for e in r["examples"]][:loadgen.EXAMPLES]
    total["disconnected"] = {}
    for r in results:
        for reason, count in r["disconnected"].items():
            total["disconnected"][reason] = total["disconnected"].get(reason, 0) + count
    total["wall"] = max(r["wall"] for r in results)
    total["busy"] = [r["cpu"] / r["wall"] if r["wall"] else 0.0 for r in results]
    return total


def merge_refusals(readies: list) -> dict:
    refused = {}
    for _, reasons in readies:
        for reason, count in reasons.items():
            refused[reason] = refused.get(reason, 0) + count
    return refused


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def report(args, target: str, outcome: dict) -> list[str]:
    """The closing summary, as lines."""
    server_busy, server_files = outcome["server_busy"], outcome["server_files"]
    lines = []
    connected = outcome["connected"]
    lines.append("Clients:     %d of %d connected%s" % (
        connected, args.clients, " and named" if not args.echo else ""))
    for reason, count in sorted(outcome["refused"].items(), key=lambda item: -item[1]):
        lines.append("             %d not: %s" % (count, reason))
    if outcome["refused"] and server_files is not None and connected < args.clients \
            and not any("this tool" in reason for reason in outcome["refused"]):
        lines.append("             (the server's open-files limit is %s: each client "
                     "holds one)" % server_files)
    for reason, count in outcome["disconnected"].items():
        lines.append("             %d disconnected during the run: %s" % (count, reason))
    lost = outcome["lost_deliveries"] + outcome["lost_replies"]
    what = "echoes" if args.echo else "MSG"
    lines.append("Messages:    %s sent (%s), %s delivered, %s lost, %s wrong" % (
        thousands(outcome["sent"]), what, thousands(outcome["delivered"]), thousands(lost),
        thousands(outcome["wrong"])))
    if outcome["lost_replies"]:
        lines.append("             (lost: %d deliveries and %d SENT replies never came)"
                     % (outcome["lost_deliveries"], outcome["lost_replies"]))
    for example in outcome["examples"]:
        lines.append("             wrong: " + example)
    lines.append("Throughput:  %s deliveries/s" % thousands(round(outcome["throughput"])))
    if outcome["p50"] is None:
        lines.append("Latency:     nothing was delivered")
    else:
        lines.append("Latency:     p50 %.2f ms, p99 %.2f ms (%s)" % (
            outcome["p50"] * 1000, outcome["p99"] * 1000,
            "from a message sent to its echo read" if args.echo
            else "from MSG sent to its FROM read by the recipient"))
    busy = outcome["busy"]
    tool = "this tool's %d worker process%s: busy %s of the time" % (
        len(busy), "" if len(busy) == 1 else "es", ", ".join("%.0f%%" % (b * 100) for b in busy))
    if server_busy is None:
        server = "the server: CPU time unknown (%s)" % target
    else:
        server = "the server: busy %.0f%% of one processor" % (server_busy * 100)
        if outcome["delivered"]:
            server += " (%.0f µs of its CPU per delivery)" % (
                outcome["server_cpu"] / outcome["delivered"] * 1e6)
    lines.append("CPU:         %s; %s" % (server, tool))
    crowd = other_load(len(busy) + (1 if server_busy is not None else 0))
    if "server_exit" in outcome:
        lines.append("Limit:       the server: it exited during the run (status %s, its "
                     "output is above)." % outcome["server_exit"])
    else:
        lines.append("Limit:       " + verdict(args, server_busy, busy, crowd is not None))
    if crowd:
        lines.append("Machine:     " + crowd)
    return lines


def other_load(ours: int) -> str | None:
    """A warning when other programs compete for the processors (POSIX load average)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None   # Windows has no load average
    cpus = os.cpu_count() or 1
    if load <= max(cpus, ours) + 0.5:
        return None
    return ("busy with other programs too (load average %.1f on %d processors): "
            "the figures are lower than a quiet machine would give." % (load, cpus))


def verdict(args, server_busy: float | None, busy: list[float], crowded: bool) -> str:
    """Who set the pace: a process busy all the time, or else the round trips."""
    if max(busy) >= BUSY:
        more = args.workers + 1
        return ("THIS TOOL, not the server: a worker was busy all the time, so the server "
                "may take more than shown. Try --workers %d, or run the tool on another "
                "machine (--port)." % more)
    if server_busy is None:
        return ("not this tool (its busiest worker: %.0f%% of the time); the server's CPU "
                "time is unknown here: if `top` shows it busy all the time, it is the limit."
                % (max(busy) * 100))
    if server_busy >= BUSY:
        return "the server: its processor time was all used."
    if crowded:
        return ("the machine: neither the server nor this tool had a processor to itself, "
                "other programs took the rest.")
    return ("neither was busy all the time: with %d message%s in flight per client, the "
            "round trips set the pace (more --in-flight or --clients load it harder)."
            % (args.in_flight, "" if args.in_flight == 1 else "s"))


def thousands(number: int) -> str:
    return "{:,}".format(number)


def json_fields(args, outcome: dict) -> dict:
    return {
        "stage": args.stage,
        "clients": args.clients,
        "clients_connected": outcome["connected"],
        "seconds": round(outcome["wall"], 3),
        "sent": outcome["sent"],
        "delivered": outcome["delivered"],
        "lost": outcome["lost_deliveries"] + outcome["lost_replies"],
        "wrong": outcome["wrong"],
        "throughput": round(outcome["throughput"], 1),
        "latency_ms": {"p50": ms(outcome["p50"]), "p99": ms(outcome["p99"])},
    }


def load(args) -> int:
    """Run the load test; return the exit status (0: every client connected,
    nothing lost or wrong)."""
    server = run = None
    progress = Progress()
    try:
        if args.impl is not None:
            server, port = start_server(args.script)
            host, target = "127.0.0.1", str(args.script)
        else:
            host, port, target = args.host, args.port, "%s:%d" % (args.host, args.port)
        # Only now: the server keeps the limits the user gave it, we take what we may.
        args.workers = args.workers or choose_workers(args, raise_open_files_limit())
        print("Load test: %s (stage %d), %d clients, %g s, %d message%s in flight per client, "
              "%d worker process%s" % (
                  target, args.stage, args.clients, args.seconds, args.in_flight,
                  "" if args.in_flight == 1 else "s", args.workers,
                  "" if args.workers == 1 else "es"), flush=True)
        run = Run(args, host, port)
        outcome = measure(args, run, server, progress)
        for line in report(args, target, outcome):
            print(line)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(json_fields(args, outcome), f, indent=2)
                f.write("\n")
        perfect = (outcome["connected"] == args.clients and outcome["wrong"] == 0
                   and outcome["lost_deliveries"] + outcome["lost_replies"] == 0
                   and not outcome["disconnected"] and outcome["delivered"] > 0)
        return 0 if perfect else 1
    finally:
        progress.end()
        if run is not None:
            run.stop()
        if server is not None:
            server.stop()


def measure(args, run: Run, server, progress: Progress) -> dict:
    """Connect, run, and gather what the workers and the server's CPU tell."""
    progress.show("connecting %d clients..." % args.clients)
    server_files = open_files_limit(server.proc.pid) if server else None
    share_size = math.ceil(args.clients / args.workers)
    readies = run.collect("ready", loadgen.connect_phase(share_size) + READY_GRACE)
    progress.show("%d of %d clients ready; running for %g s" % (
        sum(ready[0] for ready in readies), args.clients, args.seconds))
    progress.end()
    server_cpu = cpu_seconds(server.proc.pid) if server else None
    started = time.monotonic()
    run.go()
    shown = [started]

    def show_progress():
        now = time.monotonic()
        if now - shown[0] < PROGRESS_EVERY or not run.progress:
            return
        shown[0] = now
        sent, delivered, wrong = (sum(v[i] for v in run.progress.values()) for i in range(3))
        elapsed = min(now - started, args.seconds)
        progress.show("%4.1f/%g s   sent %s   delivered %s (%s/s)   wrong %s" % (
            elapsed, args.seconds, thousands(sent), thousands(delivered),
            thousands(round(delivered / max(elapsed, 1e-9))), thousands(wrong)))

    done = run.collect("done", args.seconds + loadgen.DRAIN_TIMEOUT + RESULT_GRACE,
                       show_progress)
    progress.end()
    outcome = merge([d[0] for d in done])
    outcome["refused"] = merge_refusals(readies)
    outcome["throughput"] = outcome["in_window"] / outcome["wall"] if outcome["wall"] else 0.0
    outcome["server_files"] = server_files
    outcome["server_busy"] = outcome["server_cpu"] = None
    now_cpu = cpu_seconds(server.proc.pid) if server_cpu is not None else None
    if now_cpu is not None:
        # The server's CPU from "go" to the end of the drain, against that wall time,
        # and per delivery: a cost that other programs on the machine do not change.
        outcome["server_cpu"] = now_cpu - server_cpu
        outcome["server_busy"] = outcome["server_cpu"] / max(time.monotonic() - started, 1e-9)
    if server is not None and server.exit_status() is not None:
        outcome["server_exit"] = server.exit_status()
        print(server.describe())   # its exit status and the end of its output
    return outcome


def interrupted(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    for stream in (sys.stdout, sys.stderr):   # never fail on a terminal without µ or …
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        args = parse_arguments(argv)
    except UsageError as error:
        print("python -m grader load: %s (see --help)" % error, file=sys.stderr)
        return 2
    if POSIX:
        # A platform's time limit sends SIGTERM: end like Ctrl-C, through the finally
        # clauses that stop the server and the workers.
        signal.signal(signal.SIGTERM, interrupted)
    try:
        return load(args)
    except KeyboardInterrupt:
        print("\nInterrupted: the server and the workers were stopped.", file=sys.stderr)
        return 130
    except RuntimeError as error:
        print("python -m grader load: %s" % error, file=sys.stderr)
        return 1
