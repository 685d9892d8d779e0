"""Root's only way into paths the sandbox controls (the overlay's upper dir, /session/upper).

Why: the change scan, the reader that serves diffs and Accept, and Discard run as root on a tree
the agent writes, and the agent is assumed hostile and fast. A path string such as
"/session/upper/d/f" is resolved again by every syscall, so a folder swapped for a symlink to
/etc/ssh or /sys/firmware/qemu_fw_cfg between two steps would make root read or delete there.
Here every path is walked one component at a time from a descriptor of the upper dir: folders
with O_DIRECTORY|O_NOFOLLOW, the last component with O_NOFOLLOW (and O_NONBLOCK, so a FIFO
cannot hang the reader); a symlink anywhere fails with ELOOP/ENOTDIR instead of being followed.
Each step is relative to a folder already open, so a later swap of the name changes nothing.
Nothing here takes a path string below the upper dir's own descriptor.
"""
import os
import stat

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
O_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


class Refused(OSError):
    pass


def components(rel):
    """Splits a relative path (bytes) into names; refuses absolute paths, '.', '..', '' and NUL."""
    if not isinstance(rel, bytes):
        raise Refused("path must be bytes")
    if not rel or rel.startswith(b"/") or b"\0" in rel:
        raise Refused("not a relative path: %r" % rel)
    parts = rel.split(b"/")
    for p in parts:
        if p in (b"", b".", b".."):
            raise Refused("bad path component %r in %r" % (p, rel))
    return parts


def open_dir_at(dir_fd, name):
    return os.open(name, O_DIR, dir_fd=dir_fd)


def open_parent(root_fd, rel):
    """(fd of the folder holding rel's last component, that component). The caller closes fd.

    Raises OSError (ELOOP, ENOTDIR, ENOENT) when a folder on the way is a symlink, not a folder or
    missing: nothing outside the tree under root_fd is ever reached."""
    parts = components(rel)
    fd = os.dup(root_fd)
    try:
        for name in parts[:-1]:
            nfd = open_dir_at(fd, name)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def open_file(root_fd, rel):
    """(fd, stat) of a regular file at rel, never following a symlink; ValueError if not regular."""
    pfd, leaf = open_parent(root_fd, rel)
    try:
        fd = os.open(leaf, O_FILE, dir_fd=pfd)
    finally:
        os.close(pfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(21, "not a regular file")
        return fd, st
    except BaseException:
        os.close(fd)
        raise


def read_fd(fd, limit, offset=0):
    """Up to `limit` bytes from offset (pread, so the descriptor's position does not matter)."""
    out = []
    got = 0
    while got < limit:
        chunk = os.pread(fd, min(1 << 20, limit - got), offset + got)
        if not chunk:
            break
        out.append(chunk)
        got += len(chunk)
    return b"".join(out)


def remove_tree_at(dir_fd, name):
    """Removes name (a file, link, device or a whole folder) inside dir_fd, never following a
    symlink: a folder is opened with O_NOFOLLOW|O_DIRECTORY and emptied through its descriptor.
    Returns the number of entries removed."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return 1
    n = 0
    # iterative (an agent can nest folders deeper than Python's recursion limit); each folder is
    # listed once, its names kept while its entries go
    fd0 = open_dir_at(dir_fd, name)
    stack = [(dir_fd, name, fd0, iter([os.fsencode(c) for c in os.listdir(fd0)]))]
    try:
        while stack:
            parent_fd, dname, fd, names = stack[-1]
            for c in names:
                cst = os.stat(c, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISDIR(cst.st_mode):
                    cfd = open_dir_at(fd, c)
                    stack.append((fd, c, cfd, iter([os.fsencode(x) for x in os.listdir(cfd)])))
                    break
                os.unlink(c, dir_fd=fd)
                n += 1
            else:
                stack.pop()
                os.close(fd)
                os.rmdir(dname, dir_fd=parent_fd)
                n += 1
    finally:
        for _, _, fd, _ in stack:
            try:
                os.close(fd)
            except OSError:
                pass
    return n
