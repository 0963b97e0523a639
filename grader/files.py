"""What a grading's programs write to disk: bounded, and gone when the grading ends.

The grader never writes a program's output to disk (programs.py), but a program
may write files of its own: a log in /tmp, a file in its working folder, a
shared-memory file in /dev/shm. So, for each grading:

* each file is at most the output limit (RLIMIT_FSIZE, limits.py) and no core
  file is written;
* the programs work in a folder of the grading's own (`scratch`: their working
  folder, and TMPDIR, which Python's tempfile and most runtimes follow);
* when the programs run as a user of their own (as root: the grading's own
  user, or --run-as), every file that user owns in the places every user can
  write (PLACES, and the folders below them it can reach) is theirs too: the
  watchdog adds up what it owns in the folders it could write when the grading
  started (PLACES, and any world-writable folder below them) about once a second,
  at once when those file systems fill by more than TRIGGER, and past `disk`
  bytes it stops the programs writing and removes their files (when the file
  systems grew enough that they may be past it, the programs writing are paused
  while it adds up: a fast writer's files grow by hundreds of MB a second);
* when the grading ends (and when a grading's own user is claimed, in case an
  earlier grading under that id was killed before it could), the scratch folder
  and every file of that user in PLACES are removed.

Run as yourself (not root), the grader cannot tell the programs' files from
yours: the scratch folder alone is bounded and removed.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

# Where every user may write on Linux and macOS (those that exist are looked at).
PLACES = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/private/tmp", "/private/var/tmp")
SCAN_PERIOD = 1.0          # seconds between two sums of the files, at most
TRIGGER = 4 * 1000 * 1000  # ... or at once, when the places' file systems grew by this much


def places() -> list[Path]:
    """The places every user can write, each once (symbolic links resolved)."""
    found: list[Path] = []
    for place in PLACES:
        path = Path(place)
        try:
            real = path.resolve()
        except OSError:
            continue
        if real.is_dir() and real not in found:
            found.append(real)
    return found


def make_scratch(uid: int | None, gid: int | None) -> Path:
    """A folder of this grading's own for its programs, theirs alone (mode 0700)."""
    scratch = Path(tempfile.mkdtemp(prefix="chatkit-files-"))
    if uid is not None:
        os.chown(scratch, uid, gid if gid is not None else -1)
    return scratch


def _allows(info: os.stat_result, uid: int, gid: int | None, bits: int) -> bool:
    """Whether user `uid` (group `gid`, no other group) has all of `bits` (given as
    the owner's: stat.S_IWUSR | stat.S_IXUSR) on a file or folder."""
    mode = info.st_mode
    if info.st_uid == uid:
        return mode & bits == bits
    if gid is not None and info.st_gid == gid:
        return mode & (bits >> 3) == bits >> 3
    return mode & (bits >> 6) == bits >> 6


WRITE = stat.S_IWUSR | stat.S_IXUSR
ENTER = stat.S_IXUSR


def owned_in_places(uid: int, gid: int | None, skip: Path | None = None,
                    open_folders: list[Path] | None = None):
    """(path, is a folder, bytes on disk) for every entry `uid` owns in PLACES, at any
    depth it could reach; a folder of its own is given whole (its size: all below).
    `open_folders`, if given, gets every folder of someone else's where `uid` can write
    (where, later, only its own entries need looking for: `owned_in`)."""
    waiting = [place for place in places()]
    while waiting:
        folder = waiting.pop()
        try:
            info = os.stat(folder, follow_symlinks=False)
            entries = list(os.scandir(folder))
        except OSError:
            continue
        if open_folders is not None and _allows(info, uid, gid, WRITE):
            open_folders.append(Path(folder))
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            path = Path(entry.path)
            if skip is not None and path == skip:
                continue
            if info.st_uid == uid:
                if stat.S_ISDIR(info.st_mode):
                    yield path, True, tree_size(path)
                else:
                    yield path, False, info.st_blocks * 512
            elif stat.S_ISDIR(info.st_mode) and _allows(info, uid, gid, ENTER):
                waiting.append(path)


def owned_in(folders: list[Path], uid: int, skip: Path | None = None):
    """As owned_in_places, looking only at the entries of `folders` (quick)."""
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            path = Path(entry.path)
            if info.st_uid == uid and path != skip:
                if stat.S_ISDIR(info.st_mode):
                    yield path, True, tree_size(path)
                else:
                    yield path, False, info.st_blocks * 512


def tree_size(folder: Path) -> int:
    """Bytes on disk of everything under `folder` (links not followed)."""
    total = 0
    for root, dirs, names in os.walk(folder):
        for name in names + dirs:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def remove(path: Path, is_folder: bool) -> None:
    try:
        if is_folder:
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


class Files:
    """The files of one grading's programs: how much, and their removal."""

    def __init__(self, scratch: Path | None, uid: int | None, gid: int | None,
                 owned: bool, bound: int) -> None:
        self.scratch = scratch
        self.uid, self.gid = uid, gid
        self.owned = owned     # whether what uid owns in PLACES is the programs' (theirs alone)
        self.bound = bound     # bytes, all together; 0: no bound
        self.places = places() + ([scratch] if scratch else [])
        self.last_scan = 0.0
        self.last_fill = self._fill()   # at the last sum, or the least seen since
        self.last_used = 0
        self.growing = False   # their files grew fast at the last sum: sum again soon
        self.maybe_past = False  # the file systems grew enough since that they may be past
        self.filling = False     # the file systems grew fast since the look before
        self.last_look_fill = self.last_fill
        self.peak = 0          # the most seen at a sum
        # The folders of others' where the user may write (PLACES, and any such folder
        # below them, e.g. a world-writable one): found once, looked into at each sum.
        self.open_folders: list[Path] = []
        # What the user owns already: an earlier grading's, under that user, that was
        # killed before it could remove it (remove_leftovers).
        self.leftovers = list(owned_in_places(uid, gid, scratch, self.open_folders)) \
            if owned and uid is not None else []

    def _fill(self) -> int:
        """Bytes used on the file systems of PLACES and the scratch folder (cheap)."""
        total = 0
        seen = set()
        for place in self.places:
            try:
                info = os.statvfs(place)
            except (OSError, AttributeError):
                continue
            key = (info.f_fsid, info.f_blocks) if hasattr(info, "f_fsid") else str(place)
            if key not in seen:
                seen.add(key)
                total += (info.f_blocks - info.f_bfree) * info.f_frsize
        return total

    def entries(self, everywhere: bool = True):
        """(path, is a folder, bytes) of everything the programs wrote: looking in every
        folder the user can reach, or (quick) in the folders it could write at the start."""
        if self.scratch is not None and self.scratch.is_dir():
            for entry in list(os.scandir(self.scratch)):
                try:
                    is_folder = entry.is_dir(follow_symlinks=False)
                    size = tree_size(Path(entry.path)) if is_folder else \
                        entry.stat(follow_symlinks=False).st_blocks * 512
                except OSError:
                    continue
                yield Path(entry.path), is_folder, size
        if self.owned and self.uid is not None:
            if everywhere:
                yield from owned_in_places(self.uid, self.gid, skip=self.scratch)
            else:
                yield from owned_in(self.open_folders, self.uid, skip=self.scratch)

    def due(self) -> bool:
        """Whether to add the files up now: once a SCAN_PERIOD, or at once when the
        file systems filled by TRIGGER bytes since the last sum."""
        if not self.bound:
            return False
        now = time.monotonic()
        fill = self._fill()
        # Files removed (theirs, or anyone's) lower the mark too: a writer stopped and
        # started afresh is seen after TRIGGER bytes, not after all it had written before.
        self.last_fill = min(self.last_fill, fill)
        grown = fill - self.last_fill
        # Filling fast since the last look (theirs or anyone's): look again soon.
        self.filling = fill - self.last_look_fill >= TRIGGER // 4
        self.last_look_fill = fill
        # At most what they had at the last sum, and all that the file systems grew by
        # since: past the bound, they may be past it (a pause for the sum, watchdog.py).
        self.maybe_past = self.last_used + grown > self.bound
        if self.growing or now - self.last_scan >= SCAN_PERIOD or grown >= TRIGGER:
            self.last_scan, self.last_fill = now, fill
            return True
        return False

    def used(self) -> int:
        total = sum(size for _, _, size in self.entries(everywhere=False))
        self.peak = max(self.peak, total)
        self.growing = total - self.last_used >= TRIGGER // 4
        self.last_used = total
        return total

    def remove_leftovers(self) -> None:
        for path, is_folder, _ in self.leftovers:
            remove(path, is_folder)
        self.leftovers = []

    def remove_all(self, scratch_too: bool = False, everywhere: bool = True) -> None:
        """Remove everything the programs wrote (the scratch folder itself too, at the
        end): looking everywhere the user can reach, or (quick, during the grading)
        where the sums look."""
        for path, is_folder, _ in list(self.entries(everywhere)):
            remove(path, is_folder)
        if scratch_too and self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def writers(pids) -> set[int]:
    """Those of `pids` (Linux) that have written to files: bytes they sent to a file
    system (/proc/PID/io), or a file open for writing (tmpfs, /dev/shm, counts no
    bytes there), not a pipe, a socket or a device."""
    found = set()
    for pid in list(pids):
        try:
            with open("/proc/%d/io" % pid, "rb") as io:
                if int(io.read().split(b"write_bytes:")[1].split()[0]) > 0:
                    found.add(pid)
                    continue
            fds = os.listdir("/proc/%d/fd" % pid)
        except (OSError, ValueError, IndexError):
            continue
        for fd in fds:
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                with open("/proc/%d/fdinfo/%s" % (pid, fd)) as info:
                    flags = int(info.read().split("flags:")[1].split()[0], 8)
            except (OSError, ValueError, IndexError):
                continue
            on_disk = target.startswith("/") and not target.startswith("/dev/")
            if (on_disk or target.startswith("/dev/shm/")) and flags & (os.O_WRONLY | os.O_RDWR):
                found.add(pid)
                break
    return found
