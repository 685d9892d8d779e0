#!/usr/bin/python3 -u
"""Cowork guest agent: runs many commands over one SSH channel.

Why: under emulation a new SSH channel costs ~100 ms per command while a fork+exec here costs
~36 ms (docs/benchmarks.md), so the host keeps this agent on one channel and multiplexes commands
over JSON lines. Every command runs in its own session (process group); when the channel closes
(host gone, connection dropped) every process this agent started is killed, so nothing is orphaned.

Host -> agent:  {"op":"run","id":1,"argv":[...],"cwd":"/workspace","env":{...},"timeoutMs":5000,"stdin":"<b64>",
                 "user":{"uid":N,"gid":N}, "fds":{"10":"/path"},
                 "cgroup":{"name":"cmd-1","memoryMax":N,"pidsMax":N,"cpuMax":"180000 100000"}}
                {"op":"kill","id":1,"signal":"KILL"}     {"op":"ping","id":2}
                {"op":"changes","id":3}  (the change set, scanned in this process: answered like a
                 command whose stdout is changes.py's JSON, without starting Python again)
Agent -> host:  {"ev":"started","id":1,"pid":123}
                {"ev":"out","id":1,"fd":1,"b64":"..."}
                {"ev":"exit","id":1,"code":0,"signal":null,"timedOut":false,"ms":12,"oomKilled":false,"pidsLimited":false}
                {"ev":"pong","id":2}   {"ev":"error","id":1,"message":"..."}
"""
import base64, json, os, selectors, signal, sys, threading, time

CHUNK = 65536
CGROUP_ROOT = "/sys/fs/cgroup/cowork"
sel = selectors.DefaultSelector()
procs = {}  # id -> dict(pid, fds, deadline, started, timedOut, status)
out_lock = threading.Lock()


def emit(obj):
    data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
    with out_lock:
        view = memoryview(data)
        while view:
            n = os.write(1, view)
            view = view[n:]


def kill_group(p, sig=signal.SIGKILL):
    try:
        os.killpg(p["pid"], sig)
    except ProcessLookupError:
        pass
    if sig == signal.SIGKILL and p.get("cgroup"):
        # Everything in the command's cgroup, including what left its session.
        write_file(os.path.join(p["cgroup"], "cgroup.kill"), "1")


def write_file(path, value):
    try:
        with open(path, "w") as f:
            f.write(value)
        return True
    except OSError:
        return False


def read_events(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.partition(" ")
                out[k] = int(v)
    except (OSError, ValueError):
        pass
    return out


def make_cgroup(spec):
    name = spec["name"]
    if not name.replace("-", "").isalnum():
        raise ValueError("bad cgroup name")
    path = os.path.join(CGROUP_ROOT, name)
    os.makedirs(path, exist_ok=True)
    if spec.get("memoryMax"):
        write_file(os.path.join(path, "memory.max"), str(int(spec["memoryMax"])))
        write_file(os.path.join(path, "memory.swap.max"), "0")
        write_file(os.path.join(path, "memory.oom.group"), "1")
    if spec.get("pidsMax"):
        write_file(os.path.join(path, "pids.max"), str(int(spec["pidsMax"])))
    if spec.get("cpuMax"):
        write_file(os.path.join(path, "cpu.max"), str(spec["cpuMax"]))
    return path


def remove_cgroup(path):
    for _ in range(100):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def feed_stdin(fd, data):
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError:
        pass
    finally:
        os.close(fd)


def start(msg):
    cid = msg["id"]
    # argvB64 carries raw bytes (file names need not be UTF-8); argv is text
    argv = [base64.b64decode(a) for a in msg["argvB64"]] if msg.get("argvB64") else msg["argv"]
    env = msg.get("env") or {}
    cwd = msg.get("cwd") or "/"
    stdin_b64 = msg.get("stdin")
    user = msg.get("user")
    fds = {int(k): v for k, v in (msg.get("fds") or {}).items()}
    cgroup = make_cgroup(msg["cgroup"]) if msg.get("cgroup") else None
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            if cgroup:  # join before anything runs, so not even the first fork escapes the limits
                with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                    f.write("0")
            os.setsid()
            os.dup2(in_r, 0); os.dup2(out_w, 1); os.dup2(err_w, 2)
            os.closerange(3, 65536)
            for num, path in fds.items():
                fd = os.open(path, os.O_RDONLY)
                if fd != num:
                    os.dup2(fd, num, inheritable=True)
                    os.close(fd)
                else:
                    os.set_inheritable(fd, True)
            for s in (signal.SIGPIPE, signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(s, signal.SIG_DFL)
            if user:
                os.setgroups([])
                os.setgid(int(user["gid"]))
                os.setuid(int(user["uid"]))
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        except BaseException as e:  # exec failed: report like a shell would
            try:
                os.write(2, ("cowork-agent: %r: %s\n" % (argv[0] if argv else "", e)).encode())
            finally:
                os._exit(127 if isinstance(e, FileNotFoundError) else 126)
    os.close(in_r); os.close(out_w); os.close(err_w)
    if stdin_b64:
        threading.Thread(target=feed_stdin, args=(in_w, base64.b64decode(stdin_b64)), daemon=True).start()
    else:
        os.close(in_w)
    timeout = msg.get("timeoutMs")
    p = {"id": cid, "pid": pid, "fds": {out_r: 1, err_r: 2}, "t0": t0, "cgroup": cgroup,
         "deadline": t0 + timeout / 1000.0 if timeout else None, "timedOut": False, "status": None}
    procs[cid] = p
    for fd in (out_r, err_r):
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ, ("out", p))
    emit({"ev": "started", "id": cid, "pid": pid})


def drain(p, fd):
    try:
        data = os.read(fd, CHUNK)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if data:
        emit({"ev": "out", "id": p["id"], "fd": p["fds"][fd], "b64": base64.b64encode(data).decode()})
    else:
        sel.unregister(fd)
        os.close(fd)
        del p["fds"][fd]


def finish(p):
    # The main process is gone: collect what its pipes still hold, end anything it left behind.
    for fd in list(p["fds"]):
        while fd in p["fds"]:
            try:
                data = os.read(fd, CHUNK)
            except BlockingIOError:
                break
            if not data:
                break
            emit({"ev": "out", "id": p["id"], "fd": p["fds"][fd], "b64": base64.b64encode(data).decode()})
        sel.unregister(fd)
        os.close(fd)
        del p["fds"][fd]
    kill_group(p)
    oom = pids_limited = False
    if p["cgroup"]:
        oom = read_events(os.path.join(p["cgroup"], "memory.events")).get("oom_kill", 0) > 0
        pids_limited = read_events(os.path.join(p["cgroup"], "pids.events")).get("max", 0) > 0
        remove_cgroup(p["cgroup"])
    st = p["status"]
    code = os.WEXITSTATUS(st) if os.WIFEXITED(st) else None
    sig = signal.Signals(os.WTERMSIG(st)).name[3:] if os.WIFSIGNALED(st) else None
    procs.pop(p["id"], None)
    emit({"ev": "exit", "id": p["id"], "code": code, "signal": sig, "timedOut": p["timedOut"],
          "ms": int((time.monotonic() - p["t0"]) * 1000), "oomKilled": oom, "pidsLimited": pids_limited})


def reap():
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        for p in list(procs.values()):
            if p["pid"] == pid:
                p["status"] = st
                finish(p)


_changes = None
_changes_lock = threading.Lock()


def scan_changes(id):
    # Starting Python costs ~0.4 s under emulation; the scan itself a few ms for 100 changes. So the
    # agent keeps changes.py loaded (and its hash cache in memory) and scans in a thread, while
    # running commands keep streaming.
    global _changes
    t0 = time.monotonic()
    try:
        with _changes_lock:
            if _changes is None:
                import importlib.util
                spec = importlib.util.spec_from_file_location("cowork_changes", os.path.join(os.path.dirname(os.path.abspath(__file__)), "changes.py"))
                mod = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(mod)
                mod.load_cache()
                _changes = mod
            data = json.dumps(_changes.scan_and_save(), separators=(",", ":")).encode()
        for i in range(0, len(data), CHUNK):
            emit({"ev": "out", "id": id, "fd": 1, "b64": base64.b64encode(data[i:i + CHUNK]).decode()})
        emit({"ev": "exit", "id": id, "code": 0, "signal": None, "timedOut": False,
              "ms": int((time.monotonic() - t0) * 1000), "oomKilled": False, "pidsLimited": False})
    except Exception as e:
        emit({"ev": "error", "id": id, "message": "the change scan failed: %s" % e})


def handle(line):
    try:
        msg = json.loads(line)
        op = msg.get("op")
        if op == "run":
            start(msg)
        elif op == "kill":
            p = procs.get(msg["id"])
            if p:
                kill_group(p, getattr(signal, "SIG" + msg.get("signal", "KILL")))
        elif op == "changes":
            threading.Thread(target=scan_changes, args=(msg["id"],), daemon=True).start()
        elif op == "ping":
            emit({"ev": "pong", "id": msg.get("id")})
        else:
            emit({"ev": "error", "id": msg.get("id"), "message": "unknown op %r" % op})
    except Exception as e:  # a bad message must not take the agent down
        emit({"ev": "error", "id": msg.get("id") if isinstance(msg, dict) else None, "message": str(e)})


def main():
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False); os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    os.set_blocking(0, False)
    sel.register(0, selectors.EVENT_READ, ("in", None))
    sel.register(wake_r, selectors.EVENT_READ, ("wake", None))
    buf = b""
    emit({"ev": "hello", "pid": os.getpid()})
    while True:
        now = time.monotonic()
        deadlines = [p["deadline"] for p in procs.values() if p["deadline"] and not p["timedOut"]]
        timeout = max(0.0, min(deadlines) - now) if deadlines else None
        for key, _ in sel.select(timeout):
            kind, p = key.data
            if kind == "in":
                try:
                    chunk = os.read(0, CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:  # host gone: nothing may outlive the channel
                    for q in list(procs.values()):
                        kill_group(q)
                    os._exit(0)
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        handle(line)
            elif kind == "wake":
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
            else:
                if key.fd in p["fds"]:
                    drain(p, key.fd)
        now = time.monotonic()
        for p in list(procs.values()):
            if p["deadline"] and not p["timedOut"] and now >= p["deadline"]:
                p["timedOut"] = True
                kill_group(p)
        reap()


if __name__ == "__main__":
    main()
