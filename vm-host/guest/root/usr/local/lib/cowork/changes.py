#!/usr/bin/python3
"""Lists the task's changes by scanning the overlay's upper dir (not the workspace), as root.

Cost grows with the number of changes, not the size of the workspace. Prints one JSON object:
{"changes": [{"path": b64, "kind": "added|modified|deleted|symlink|mode", "type": "file|symlink|dir",
"size": n, "sha256": hex, "hashSkipped": "too-large|time-budget", "mode": n, "target": b64}],
"errors": [...], "incomplete": null | "why"}. Paths are relative, base64 of the raw bytes (names
need not be UTF-8).

Overlay format: added/modified files are full copies; a deletion is a 0:0 character device; a
deleted-and-recreated directory carries trusted.overlay.opaque=y (everything under the lower one
is gone except what the upper holds); a rename is a deletion plus an addition.

Safety (docs/sandbox.md, "The review boundary"): the upper dir is the sandbox's, so it is walked
through descriptors only (upperfs.py): folders opened with O_DIRECTORY|O_NOFOLLOW relative to
their parent's descriptor, files with O_NOFOLLOW|O_NONBLOCK and checked with fstat to be the
regular file that was listed. A folder swapped for a symlink mid-scan is reported as changed,
never followed. The lower layer (the read-only share of the person's folder) is walked the same
way, so a link there is not followed either.

Budgets: a file larger than HASH_MAX_BYTES is listed without a hash ("hashSkipped": "too-large";
its size is the apparent size, so a sparse 100 GiB file costs one fstat); hashing stops when the
time budget is spent ("time-budget"; the next scan continues, the cache keeps what was hashed);
listing stops at MAX_ENTRIES entries or twice the time budget ("incomplete" says so).
"""
import base64
import hashlib
import json
import os
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import upperfs  # noqa: E402

UPPER = b"/session/upper"
LOWER = b"/mnt/host"
HASH_MAX_BYTES = 50 * 1024 * 1024
BUDGET_MS = 20_000
MAX_ENTRIES = 100_000
MAX_DEPTH = 200


def b64(p):
    return base64.b64encode(p).decode()


HASH_CACHE = "/run/cowork-hash-cache.json"
_cache, _used = {}, {}


def load_cache():
    global _cache
    try:
        with open(HASH_CACHE) as f:
            _cache = json.load(f)
    except (OSError, ValueError):
        _cache = {}


def save_cache():
    tmp = HASH_CACHE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_used, f)
    os.replace(tmp, HASH_CACHE)


class Budget:
    def __init__(self, ms, hash_max):
        self.t0 = time.monotonic()
        self.hash_until = self.t0 + ms / 1000.0
        self.list_until = self.t0 + 2 * ms / 1000.0
        self.hash_max = hash_max
        self.entries = 0

    def can_hash(self):
        return time.monotonic() < self.hash_until

    def can_list(self):
        return time.monotonic() < self.list_until


class Skipped(Exception):
    def __init__(self, why):
        super().__init__(why)
        self.why = why


def digest_of(dir_fd, name, st, key, budget):
    """sha256 of the regular file `name` in dir_fd, which must still be the inode `st` describes.

    Hashed again only when its inode, size, mtime or ctime changed (ctime: an agent can reset the
    mtime, not the ctime). Raises Skipped for files over the size cap or past the time budget."""
    stamp = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    hit = _cache.get(key)
    if hit and hit[0] == stamp:
        _used[key] = hit
        return hit[1]
    if st.st_size > budget.hash_max:
        raise Skipped("too-large")
    if not budget.can_hash():
        raise Skipped("time-budget")
    fd = os.open(name, upperfs.O_FILE, dir_fd=dir_fd)
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or now.st_ino != st.st_ino:
            raise OSError(0, "changed during the scan")
        h = hashlib.sha256()
        off = 0
        while True:
            chunk = os.pread(fd, 1 << 20, off)
            if not chunk:
                break
            h.update(chunk)
            off += len(chunk)
            if off > budget.hash_max:
                raise Skipped("too-large")
            if not budget.can_hash():
                raise Skipped("time-budget")
        after = os.fstat(fd)
    finally:
        os.close(fd)
    stamp = [after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns]
    if stamp[1] != off:
        raise OSError(0, "changed during the scan")
    digest = h.hexdigest()
    _used[key] = [stamp, digest]
    return digest


def lstat_at(dir_fd, name):
    if dir_fd is None:
        return None
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None


def open_dir_or_none(dir_fd, name):
    if dir_fd is None:
        return None
    try:
        return upperfs.open_dir_at(dir_fd, name)
    except OSError:
        return None


def opaque(fd):
    try:
        return os.getxattr(fd, b"trusted.overlay.opaque") == b"y"
    except OSError:
        return False


def names_of(fd):
    return sorted(os.fsencode(n) for n in os.listdir(fd))


def tree_paths(fd, rel, budget, include_dirs):
    """Every path under the folder open at fd (relative to the root), through descriptors only."""
    out = []
    stack = [(os.dup(fd), rel, 0)]
    try:
        while stack:
            dfd, drel, depth = stack.pop()
            try:
                for name in names_of(dfd):
                    budget.entries += 1
                    r = drel + b"/" + name if drel else name
                    st = lstat_at(dfd, name)
                    if st is None:
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        if include_dirs:
                            out.append(r)
                        if depth < MAX_DEPTH:
                            cfd = open_dir_or_none(dfd, name)
                            if cfd is not None:
                                stack.append((cfd, r, depth + 1))
                    else:
                        out.append(r)
            finally:
                os.close(dfd)
    finally:
        for dfd, _, _ in stack:
            os.close(dfd)
    return out


def scan(budget_ms=BUDGET_MS, hash_max=HASH_MAX_BYTES, upper=UPPER, lower=LOWER):
    """The change set as a dict; the hash cache is used and refreshed (save_cache() keeps it)."""
    global _used
    _used = {}
    budget = Budget(budget_ms, hash_max)
    changes, errors = [], []
    incomplete = None

    def emit(rel, kind, **kw):
        changes.append(dict(path=b64(rel), kind=kind, **kw))

    def file_entry(rel, kind, st, ufd, name):
        e = dict(type="file", size=st.st_size, mode=stat.S_IMODE(st.st_mode))
        try:
            e["sha256"] = digest_of(ufd, name, st, "U" + b64(rel), budget)
        except Skipped as s:
            e["hashSkipped"] = s.why
        emit(rel, kind, **e)

    root = os.open(upper, upperfs.O_DIR)
    try:
        low_root = os.open(lower, upperfs.O_DIR)
    except OSError:
        low_root = None
    # stack of folders to visit: (upper fd, lower fd or None, rel, depth)
    stack = [(root, low_root, b"", 0)]
    try:
        while stack:
            ufd, lfd, rel_dir, depth = stack.pop()
            try:
                if incomplete:
                    continue
                if rel_dir and opaque(ufd):
                    if lfd is not None:
                        present = set(tree_paths(ufd, rel_dir, budget, True))
                        for gone in tree_paths(lfd, rel_dir, budget, False):
                            if gone not in present:
                                emit(gone, "deleted", type="file")
                for name in names_of(ufd):
                    budget.entries += 1
                    if budget.entries > MAX_ENTRIES or not budget.can_list():
                        incomplete = "the scan stopped after %d entries and %.1f s (its budget); the rest is listed by a later scan" % (
                            budget.entries, time.monotonic() - budget.t0)
                        break
                    rel = rel_dir + b"/" + name if rel_dir else name
                    try:
                        st = os.stat(name, dir_fd=ufd, follow_symlinks=False)
                        lst = lstat_at(lfd, name)
                        if stat.S_ISDIR(st.st_mode):
                            # a folder in the upper dir where the lower had a file or symlink: deleted
                            if lst is not None and not stat.S_ISDIR(lst.st_mode):
                                emit(rel, "deleted", type="symlink" if stat.S_ISLNK(lst.st_mode) else "file")
                            if depth >= MAX_DEPTH:
                                errors.append({"path": b64(rel), "message": "nested more than %d folders deep; left out" % MAX_DEPTH})
                                continue
                            cfd = upperfs.open_dir_at(ufd, name)
                            if os.fstat(cfd).st_ino != st.st_ino:
                                os.close(cfd)
                                raise OSError(0, "changed during the scan")
                            clfd = open_dir_or_none(lfd, name) if lst is not None and stat.S_ISDIR(lst.st_mode) else None
                            stack.append((cfd, clfd, rel, depth + 1))
                            continue
                        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                            if lst is not None:
                                if stat.S_ISDIR(lst.st_mode):
                                    gfd = open_dir_or_none(lfd, name)
                                    if gfd is not None:
                                        try:
                                            for gone in tree_paths(gfd, rel, budget, False):
                                                emit(gone, "deleted", type="file")
                                        finally:
                                            os.close(gfd)
                                else:
                                    emit(rel, "deleted", type="symlink" if stat.S_ISLNK(lst.st_mode) else "file")
                            continue
                        if stat.S_ISLNK(st.st_mode):
                            target = os.readlink(name, dir_fd=ufd)
                            if lst is not None and stat.S_ISLNK(lst.st_mode) and os.readlink(name, dir_fd=lfd) == target:
                                continue
                            emit(rel, "symlink", type="symlink", target=b64(target), existed=lst is not None)
                            continue
                        if not stat.S_ISREG(st.st_mode):
                            errors.append({"path": b64(rel), "message": "not a regular file, link or deletion; left out"})
                            continue
                        mode = stat.S_IMODE(st.st_mode)
                        # (a lower symlink to a folder counts as a folder: only whether it is one is
                        # asked, of the person's own link; nothing is read through it)
                        low_is_dir = lst is not None and (stat.S_ISDIR(lst.st_mode) or (stat.S_ISLNK(lst.st_mode) and is_dir_following(lfd, name)))
                        if lst is not None and not low_is_dir:
                            if stat.S_ISREG(lst.st_mode) and lst.st_size == st.st_size:
                                try:
                                    same = digest_of(lfd, name, lst, "L" + b64(rel), budget) == digest_of(ufd, name, st, "U" + b64(rel), budget)
                                except Skipped:
                                    same = False
                                if same:
                                    if stat.S_IMODE(lst.st_mode) != mode:
                                        file_entry(rel, "mode", st, ufd, name)
                                    continue  # copied up but unchanged
                            file_entry(rel, "modified", st, ufd, name)
                        else:
                            file_entry(rel, "added", st, ufd, name)
                    except OSError as e:
                        errors.append({"path": b64(rel), "message": e.strerror or str(e)})
            finally:
                os.close(ufd)
                if lfd is not None:
                    os.close(lfd)
    finally:
        for ufd, lfd, _, _ in stack:
            os.close(ufd)
            if lfd is not None:
                os.close(lfd)
    return {"changes": changes, "errors": errors, "incomplete": incomplete}


def is_dir_following(dir_fd, name):
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


def make_durable(path):
    """Writes the file system under path to its disk (syncfs), or says why it could not.

    The change set is what the person reviews and what the host remembers (the last scan): a
    change it lists must survive the VM being killed a moment later. Without this, a file the
    agent wrote a few seconds before QEMU was killed could be listed with its content (read from
    the guest's page cache) and still be empty or missing on the disk after the restart (ext4's
    delayed allocation: the 1 s writeback and commit set by cowork-init need guest CPU time, which
    a loaded emulated host may not give them before the kill)."""
    import ctypes
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        return e.strerror or str(e)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) != 0:
            return os.strerror(ctypes.get_errno())
    finally:
        os.close(fd)
    return None


def scan_and_save(**kw):
    """scan(), then keep only the hashes this scan used (as the cache for the next one). Everything
    the scan listed is on the session disk before the result is returned (make_durable)."""
    global _cache
    result = scan(**kw)
    problem = make_durable(kw.get("upper", UPPER))
    if problem:
        result["errors"].append({"path": b64(b""), "message": "cannot write the changes to the session disk: %s" % problem})
    _cache = dict(_used)
    try:
        save_cache()
    except OSError:
        pass  # a cache that cannot be written only costs time
    return result


if __name__ == "__main__":
    os.chdir(b"/")
    load_cache()
    json.dump(scan_and_save(), sys.stdout)
