#!/usr/bin/python3
"""The text editor tool (str_replace_based_edit_tool), run inside the sandbox as the sandbox user.

Reads one JSON request on stdin, writes one JSON result on stdout: {"ok": bool, "output": str}.
The host has already checked the path is under /workspace; this checks again after resolving
symlinks, so a link the agent made cannot point an edit elsewhere.
"""
import json
import os
import sys

ROOT = "/workspace"
MAX_FILE_BYTES = 10 * 1024 * 1024


def fail(msg):
    print(json.dumps({"ok": False, "output": msg}))
    sys.exit(0)


def inside(path):
    real = os.path.realpath(path)
    return real == ROOT or real.startswith(ROOT + "/")


def read_text(path):
    if os.path.getsize(path) > MAX_FILE_BYTES:
        fail(f"{path} is larger than {MAX_FILE_BYTES} bytes; use bash (head, sed -n) to look at parts of it.")
    with open(path, "rb") as f:
        data = f.read()
    if b"\0" in data[:8192]:
        fail(f"{path} is a binary file ({len(data)} bytes); the editor only handles text.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        fail(f"{path} is not valid UTF-8; the editor only handles UTF-8 text.")


def write_text(path, text):
    """Writes text to the file at path: through a symlink to its target (already checked to be
    inside /workspace), never replacing the link itself; atomically, by a temporary file next to
    it that is removed on any failure or SIGTERM (only a SIGKILL mid-write can leave one)."""
    real = os.path.realpath(path)
    if not inside(real):
        fail(f"{path} resolves outside /workspace; the editor only works inside /workspace.")
    try:
        st = os.stat(real)
        mode = st.st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    folder, name = os.path.split(real)
    tmp = os.path.join(folder, f".{name}.cowork-tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, real)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def split_lines(text):
    """(lines, ends_with_newline): 'a\nb\n' has two lines, not three."""
    if text == "":
        return [], True
    trailing = text.endswith("\n")
    return (text[:-1] if trailing else text).split("\n"), trailing


def numbered(text, start=1):
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return "\n".join(f"{i:6}\t{line}" for i, line in enumerate(lines, start))


def main():
    req = json.load(sys.stdin)
    cmd, path = req.get("command"), req.get("path", "")
    if cmd != "create" and not os.path.lexists(path):
        fail(f"{path} does not exist.")
    target = path if os.path.lexists(path) else os.path.dirname(path)
    if not inside(target):
        fail(f"{path} resolves outside /workspace; the editor only works inside /workspace.")

    if cmd == "view":
        if os.path.isdir(path):
            out = []
            for dirpath, dirnames, filenames in os.walk(path):
                depth = dirpath[len(path):].count("/")
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if depth < 1 else []
                for name in sorted(dirnames + [f for f in filenames if not f.startswith(".")]):
                    out.append(os.path.join(dirpath, name))
            print(json.dumps({"ok": True, "output": f"Files and directories up to 2 levels deep in {path}:\n" + "\n".join(out[:2000])}))
            return
        text = read_text(path)
        rng = req.get("view_range")
        if rng:
            lines = text.split("\n")
            start, end = int(rng[0]), int(rng[1])
            if start < 1 or start > max(1, len(lines)) or (end != -1 and end < start):
                fail(f"Invalid view_range {rng}: the file has {len(lines)} lines.")
            chunk = lines[start - 1:] if end == -1 else lines[start - 1:end]
            print(json.dumps({"ok": True, "output": numbered("\n".join(chunk) + "\n", start)}))
        else:
            print(json.dumps({"ok": True, "output": numbered(text)}))
        return

    if cmd == "create":
        if os.path.isdir(path):
            fail(f"{path} is a directory.")
        # the folders to make: the nearest existing one must resolve inside /workspace first
        folder = os.path.dirname(path)
        existing = folder
        while not os.path.lexists(existing):
            existing = os.path.dirname(existing)
        if not inside(existing) or (os.path.lexists(path) and not inside(path)):
            fail(f"{path} resolves outside /workspace.")
        if not os.path.isdir(existing):
            fail(f"{existing} is not a directory.")
        os.makedirs(folder, exist_ok=True)
        if not inside(folder):
            fail(f"{path} resolves outside /workspace.")
        write_text(path, req.get("file_text", ""))
        print(json.dumps({"ok": True, "output": f"File created: {path}"}))
        return

    if cmd == "str_replace":
        text = read_text(path)
        old, new = req.get("old_str", ""), req.get("new_str", "")
        if old == "":
            fail("old_str must not be empty.")
        count = text.count(old)
        if count == 0:
            fail(f"old_str was not found in {path}; it must match exactly, including whitespace.")
        if count > 1:
            fail(f"old_str occurs {count} times in {path}; include more context so it is unique.")
        write_text(path, text.replace(old, new, 1))
        line = text[: text.index(old)].count("\n") + 1
        print(json.dumps({"ok": True, "output": f"Edited {path} at line {line}."}))
        return

    if cmd == "insert":
        text = read_text(path)
        lines, trailing = split_lines(text)
        at = int(req.get("insert_line", -1))
        if at < 0 or at > len(lines):
            fail(f"insert_line {at} is out of range: the file has {len(lines)} lines.")
        new = req.get("insert_text", req.get("new_str", ""))
        new_lines = new[:-1].split("\n") if new.endswith("\n") else new.split("\n")
        lines[at:at] = new_lines
        # the file keeps its final newline (or its lack of one), also after its last line
        write_text(path, "\n".join(lines) + ("\n" if trailing else ""))
        print(json.dumps({"ok": True, "output": f"Inserted {len(new_lines)} line(s) after line {at} of {path}."}))
        return

    fail(f"Unknown editor command {cmd!r}; use view, create, str_replace or insert.")


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)  # unwinds through write_text's clean-up


if __name__ == "__main__":
    import signal
    for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(_s, on_signal)
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:  # report, never crash the tool
        print(json.dumps({"ok": False, "output": f"{type(e).__name__}: {e}"}))
