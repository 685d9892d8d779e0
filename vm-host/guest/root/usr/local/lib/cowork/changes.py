#!/usr/bin/python3
"""Lists the task's changes by scanning the overlay's upper dir (not the workspace), as root.

Cost grows with the number of changes, not the size of the workspace. Prints one JSON object:
{"changes": [{"path": b64, "kind": "added|modified|deleted|symlink|mode", "type": "file|symlink|dir",
"size": n, "sha256": hex, "mode": n, "target": b64}], "errors": [...]}. Paths are relative,
base64 of the raw bytes (names need not be UTF-8).

Overlay format: added/modified files are full copies; a deletion is a 0:0 character device; a
deleted-and-recreated directory carries trusted.overlay.opaque=y (everything under the lower one
is gone except what the upper holds); a rename is a deletion plus an addition.
"""
import base64
import hashlib
import json
import os
import stat
import sys

UPPER = b"/session/upper"
LOWER = b"/mnt/host"


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


def sha256(path):
    # The scan runs after every tool call that may write: hash a file again only when its inode,
    # size or mtime changed (a 50 MB file costs seconds under emulation).
    st = os.stat(path)
    key = b64(path)
    stamp = [st.st_ino, st.st_size, st.st_mtime_ns]
    hit = _cache.get(key)
    if hit and hit[0] == stamp:
        _used[key] = hit
        return hit[1]
    digest = _sha256(path)
    _used[key] = [stamp, digest]
    return digest


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def same_content(a, sa, b, sb):
    # sizes first: only files of equal size are hashed (the lower one over 9p)
    if sa.st_size != sb.st_size:
        return False
    return sha256(a) == sha256(b)


def lstat_or_none(path):
    # The lower layer is the 9p share: every stat is a round trip to the host (~1 ms under
    # emulation), so each entry is looked up there once and the answers derived from that.
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def opaque(path):
    try:
        return os.getxattr(path, b"trusted.overlay.opaque") == b"y"
    except OSError:
        return False


def lower_files(rel):
    """Every path under a lower dir (for an opaque dir: all of it is gone)."""
    out = []
    base = os.path.join(LOWER, rel)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            out.append(os.path.relpath(os.path.join(dirpath, name), LOWER))
    return out


def scan():
    """The change set as a dict; the hash cache is used and refreshed (save_cache() keeps it)."""
    global _used
    _used = {}
    changes, errors = [], []
    def emit(rel, kind, **kw):
        changes.append(dict(path=b64(rel), kind=kind, **kw))

    for dirpath, dirnames, filenames in os.walk(UPPER):
        rel_dir = os.path.relpath(dirpath, UPPER)
        rel_dir = b"" if rel_dir == b"." else rel_dir
        if rel_dir and opaque(dirpath):
            upper_names = set()
            for dp, dn, fn in os.walk(dirpath):
                for n in fn + dn:
                    upper_names.add(os.path.relpath(os.path.join(dp, n), UPPER))
            for gone in lower_files(rel_dir):
                if gone not in upper_names:
                    emit(gone, "deleted", type="file")
        for name in dirnames:
            # a directory in the upper dir where the lower had a file or symlink: that was deleted
            rel = os.path.join(rel_dir, name) if rel_dir else name
            up = os.path.join(dirpath, name)
            if os.path.islink(up):
                continue
            lst = lstat_or_none(os.path.join(LOWER, rel))
            if lst is not None and not stat.S_ISDIR(lst.st_mode):
                emit(rel, "deleted", type="symlink" if stat.S_ISLNK(lst.st_mode) else "file")
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            up = os.path.join(dirpath, name)
            rel = os.path.join(rel_dir, name) if rel_dir else name
            low = os.path.join(LOWER, rel)
            try:
                st = os.lstat(up)
                lst = lstat_or_none(low)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    if lst is not None:
                        if stat.S_ISDIR(lst.st_mode):
                            for gone in lower_files(rel):
                                emit(gone, "deleted", type="file")
                        else:
                            emit(rel, "deleted", type="symlink" if stat.S_ISLNK(lst.st_mode) else "file")
                    continue
                if stat.S_ISLNK(st.st_mode):
                    target = os.readlink(up)
                    if lst is not None and stat.S_ISLNK(lst.st_mode) and os.readlink(low) == target:
                        continue
                    emit(rel, "symlink", type="symlink", target=b64(target), existed=lst is not None)
                    continue
                if not stat.S_ISREG(st.st_mode):
                    errors.append({"path": b64(rel), "message": "not a regular file, link or deletion; left out"})
                    continue
                mode = stat.S_IMODE(st.st_mode)
                # (a lower symlink to a folder counts as a folder, as os.path.isdir says)
                low_is_dir = lst is not None and (stat.S_ISDIR(lst.st_mode) or (stat.S_ISLNK(lst.st_mode) and os.path.isdir(low)))
                if lst is not None and not low_is_dir:
                    if stat.S_ISREG(lst.st_mode) and same_content(up, st, low, lst):
                        if stat.S_IMODE(lst.st_mode) != mode:
                            emit(rel, "mode", type="file", size=st.st_size, sha256=sha256(up), mode=mode)
                        continue  # copied up but unchanged
                    emit(rel, "modified", type="file", size=st.st_size, sha256=sha256(up), mode=mode)
                else:
                    emit(rel, "added", type="file", size=st.st_size, sha256=sha256(up), mode=mode)
            except OSError as e:
                errors.append({"path": b64(rel), "message": str(e)})
    return {"changes": changes, "errors": errors}


def scan_and_save():
    """scan(), then keep only the hashes this scan used (as the cache for the next one)."""
    global _cache
    result = scan()
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
