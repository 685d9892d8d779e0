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
    mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o644
    tmp = f"{path}.cowork-tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


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
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not inside(os.path.dirname(path)):
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
        lines = text.split("\n")
        at = int(req.get("insert_line", -1))
        if at < 0 or at > len(lines):
            fail(f"insert_line {at} is out of range: the file has {len(lines)} lines.")
        new = req.get("insert_text", req.get("new_str", ""))
        lines[at:at] = new.split("\n")
        write_text(path, "\n".join(lines))
        print(json.dumps({"ok": True, "output": f"Inserted {len(new.split(chr(10)))} line(s) after line {at} of {path}."}))
        return

    fail(f"Unknown editor command {cmd!r}; use view, create, str_replace or insert.")


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:  # report, never crash the tool
        print(json.dumps({"ok": False, "output": f"{type(e).__name__}: {e}"}))
