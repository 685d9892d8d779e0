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
                {"op":"changes","id":3,"budgetMs":20000,"hashMaxBytes":N}  (the change set, scanned in this
                 process: answered like a command whose stdout is changes.py's JSON)
                {"op":"read","id":4,"paths":[b64...],"maxBytes":N,"offset":N,"length":N}  (files of the
                 upper dir: stdout is, per path, an 8-byte big-endian length and the bytes; 2^64-1 =
                 missing or not a regular file, 2^64-2 = larger than maxBytes)
                {"op":"discard","id":5,"paths":[b64...]} or {"op":"discard","id":5,"all":true}
Agent -> host:  {"ev":"hello","pid":N,"cgroupSwept":N}  (N: commands of agents that died, killed at start)
                {"ev":"started","id":1,"pid":123}
                {"ev":"out","id":1,"fd":1,"b64":"..."}
                {"ev":"exit","id":1,"code":0,"signal":null,"timedOut":false,"ms":12,"oomKilled":false,"pidsLimited":false}
                {"ev":"pong","id":2}   {"ev":"error","id":1,"message":"..."}  (id null: a line that was
                 not a request at all; the agent answers it and keeps serving)

Processes: every command is started with subprocess (fork+exec in C, no Python code in the child of
this threaded process) through the cgroup-exec shim, which joins the command's cgroup through a
descriptor the agent opened as root and then execs. Each agent keeps its commands' cgroups under
/sys/fs/cgroup/cowork/agent-<pid>-<start>; an agent that starts kills and removes those of agents
that are gone (e.g. killed mid-command), so nothing they started outlives them. The agent itself
(its change scan and reader threads) runs in /sys/fs/cgroup/cowork-engine, with cpu and memory
limits of its own.

Root and the upper dir: the scan, the reader and discard never follow a symlink the sandbox made
(upperfs.py); the reader also drops its file-system identity to the sandbox user (setfsuid, per
thread), so it can read only what the sandbox itself could.
"""
import base64, ctypes, json, os, resource, selectors, signal, struct, subprocess, sys, threading, time

CHUNK = 65536
HERE = os.path.dirname(os.path.abspath(__file__))
SHIM = os.path.join(HERE, "cgroup-exec")
CGROUP_ROOT = "/sys/fs/cgroup/cowork"
ENGINE_CGROUP = "/sys/fs/cgroup/cowork-engine"
UPPER = b"/session/upper"
MAX_LINE = 256 * 1024 * 1024
MISSING = 2 ** 64 - 1
TOO_LARGE = 2 ** 64 - 2
sel = selectors.DefaultSelector()
procs = {}  # id -> dict(pid, fds, deadline, started, timedOut, status)
out_lock = threading.Lock()
agent_cgroup = None  # this agent's parent of its commands' cgroups


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
    except (ProcessLookupError, PermissionError):
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


def start_time(pid):
    # field 22 of /proc/<pid>/stat (after the command name, which may hold spaces)
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def remove_cgroup(path, tries=100):
    for _ in range(tries):
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.01)
    return False


def kill_cgroup_tree(path):
    """Kills and removes a cgroup and its children (a dead agent's commands)."""
    n = 0
    try:
        children = [os.path.join(path, c) for c in os.listdir(path) if os.path.isdir(os.path.join(path, c))]
    except OSError:
        return 0
    for c in children:
        n += kill_cgroup_tree(c)
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            n += sum(1 for _ in f)
    except OSError:
        pass
    write_file(os.path.join(path, "cgroup.kill"), "1")
    remove_cgroup(path)
    return n


def setup_cgroups():
    """The agent's own limits (cowork-engine) and the parent of its commands' cgroups; the commands
    of agents that are gone are killed. Returns how many processes were found in those."""
    global agent_cgroup
    if not os.path.isdir(CGROUP_ROOT):
        return 0  # not in the Cowork guest (or no cgroup v2): commands run without limits
    swept = 0
    for name in os.listdir(CGROUP_ROOT):
        if not name.startswith("agent-"):
            continue
        try:
            _, pid, st = name.split("-")
            alive = start_time(int(pid)) == st
        except (OSError, ValueError):
            alive = False
        if not alive:
            swept += kill_cgroup_tree(os.path.join(CGROUP_ROOT, name))
    try:
        os.makedirs(ENGINE_CGROUP, exist_ok=True)
        memkb = 0
        with open("/proc/meminfo") as f:
            memkb = int(f.readline().split()[1])
        ncpu = os.cpu_count() or 1
        # The scan and the reader: at most one CPU (of two or more) and a quarter of the memory
        # before the kernel reclaims, 40% before it kills; sshd and the sandbox keep the rest.
        write_file(os.path.join(ENGINE_CGROUP, "cpu.max"), "%d 100000" % (100000 if ncpu > 1 else 80000))
        write_file(os.path.join(ENGINE_CGROUP, "memory.high"), str(memkb * 1024 // 4))
        write_file(os.path.join(ENGINE_CGROUP, "memory.max"), str(memkb * 1024 * 4 // 10))
        write_file(os.path.join(ENGINE_CGROUP, "cgroup.procs"), "0")
    except OSError:
        pass
    path = os.path.join(CGROUP_ROOT, "agent-%d-%s" % (os.getpid(), start_time(os.getpid())))
    os.makedirs(path, exist_ok=True)
    write_file(os.path.join(path, "cgroup.subtree_control"), "+cpu +memory +pids")
    os.makedirs(os.path.join(path, "engine"), exist_ok=True)
    agent_cgroup = path
    return swept


def make_cgroup(spec):
    """The command's cgroup with its limits, or an exception with nothing left behind."""
    name = spec["name"]
    if not isinstance(name, str) or not name.replace("-", "").isalnum() or len(name) > 100:
        raise ValueError("bad cgroup name %r" % (name,))
    if agent_cgroup is None:
        raise OSError("cgroups are not available in this guest")
    path = os.path.join(agent_cgroup, name)
    os.mkdir(path)
    try:
        def limit(fname, value):
            with open(os.path.join(path, fname), "w") as f:
                f.write(value)
        if spec.get("memoryMax"):
            limit("memory.max", str(int(spec["memoryMax"])))
            limit("memory.swap.max", "0")
            limit("memory.oom.group", "1")
        if spec.get("pidsMax"):
            limit("pids.max", str(int(spec["pidsMax"])))
        if spec.get("cpuMax"):
            limit("cpu.max", str(spec["cpuMax"]))
        return path
    except BaseException:
        os.rmdir(path)
        raise


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
    if not isinstance(cid, int) or cid in procs:
        raise ValueError("bad or duplicate id %r" % (cid,))
    # argvB64 carries raw bytes (file names need not be UTF-8); argv is text
    argv = [base64.b64decode(a) for a in msg["argvB64"]] if msg.get("argvB64") else list(msg["argv"])
    if not argv:
        raise ValueError("empty argv")
    env = {str(k): str(v) for k, v in (msg.get("env") or {}).items()}
    cwd = msg.get("cwd") or "/"
    stdin = base64.b64decode(msg["stdin"]) if msg.get("stdin") else None
    user = msg.get("user")
    fds = {int(k): v for k, v in (msg.get("fds") or {}).items()}
    opened = []  # every descriptor and the cgroup made here: undone on any failure
    cgroup = None
    try:
        cgroup = make_cgroup(msg["cgroup"]) if msg.get("cgroup") else None
        # the engine's own commands (no limits) share one cgroup per agent: killed with the rest
        # if this agent dies, without a cgroup made and removed per command (~0.2 s under emulation)
        join = cgroup or (os.path.join(agent_cgroup, "engine") if agent_cgroup else None)
        cgfd = "-"
        if join:
            cgfd = os.open(os.path.join(join, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
            opened.append(cgfd)
        fdmap = []
        for num, path in fds.items():
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            opened.append(fd)
            fdmap.append("%d:%d" % (fd, num))
        out_r, out_w = os.pipe()
        opened += [out_r, out_w]
        err_r, err_w = os.pipe()
        opened += [err_r, err_w]
        in_r, in_w = os.pipe()
        opened += [in_r, in_w]
        kw = {}
        if user:
            kw = dict(user=int(user["uid"]), group=int(user["gid"]), extra_groups=[])
        t0 = time.monotonic()
        child = subprocess.Popen([SHIM, str(cgfd), ",".join(fdmap) or "-", "--"] + argv, executable=SHIM,
                                 stdin=in_r, stdout=out_w, stderr=err_w, cwd=cwd, env=env,
                                 start_new_session=True, close_fds=True,
                                 pass_fds=opened[:len(fdmap) + (1 if join else 0)], **kw)
    except BaseException:
        for fd in opened:
            try:
                os.close(fd)
            except OSError:
                pass
        if cgroup:
            remove_cgroup(cgroup)
        raise
    # the child has its copies; the parent keeps only its ends of the pipes
    for fd in opened:
        if fd not in (out_r, err_r, in_w):
            os.close(fd)
    if stdin:
        threading.Thread(target=feed_stdin, args=(in_w, stdin), daemon=True).start()
    else:
        os.close(in_w)
    timeout = msg.get("timeoutMs")
    p = {"id": cid, "pid": child.pid, "popen": child, "fds": {out_r: 1, err_r: 2}, "t0": t0, "cgroup": cgroup,
         "deadline": t0 + timeout / 1000.0 if timeout else None, "timedOut": False, "status": None}
    procs[cid] = p
    for fd in (out_r, err_r):
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ, ("out", p))
    emit({"ev": "started", "id": cid, "pid": child.pid})


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
                # reaped here: Popen must not wait for it again
                p["popen"].returncode = os.waitstatus_to_exitcode(st)
                finish(p)


def reply(id, data, t0):
    """Answers an engine op like a command: its stdout in chunks, then exit 0."""
    for i in range(0, len(data), CHUNK):
        emit({"ev": "out", "id": id, "fd": 1, "b64": base64.b64encode(data[i:i + CHUNK]).decode()})
    emit({"ev": "exit", "id": id, "code": 0, "signal": None, "timedOut": False,
          "ms": int((time.monotonic() - t0) * 1000), "oomKilled": False, "pidsLimited": False})


def engine_op(fn):
    """Runs an engine op in a thread (running commands keep streaming); a failure is its answer."""
    def run(msg):
        t0 = time.monotonic()
        try:
            reply(msg["id"], fn(msg), t0)
        except Exception as e:
            emit({"ev": "error", "id": msg["id"], "message": "%s failed: %s" % (msg.get("op"), e)})
    return lambda msg: threading.Thread(target=run, args=(msg,), daemon=True).start()


_changes = None
_changes_lock = threading.Lock()


@engine_op
def scan_changes(msg):
    # Starting Python costs ~0.4 s under emulation; the scan itself a few ms for 100 changes. So the
    # agent keeps changes.py loaded (and its hash cache in memory) and scans in a thread, while
    # running commands keep streaming.
    global _changes
    kw = {}
    if msg.get("budgetMs"):
        kw["budget_ms"] = int(msg["budgetMs"])
    if msg.get("hashMaxBytes"):
        kw["hash_max"] = int(msg["hashMaxBytes"])
    with _changes_lock:
        if _changes is None:
            import importlib.util
            spec = importlib.util.spec_from_file_location("cowork_changes", os.path.join(HERE, "changes.py"))
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            mod.load_cache()
            _changes = mod
        return json.dumps(_changes.scan_and_save(**kw), separators=(",", ":")).encode()


def upperfs():
    import importlib.util
    if "cowork_upperfs" not in sys.modules:
        spec = importlib.util.spec_from_file_location("cowork_upperfs", os.path.join(HERE, "upperfs.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules["cowork_upperfs"] = mod
    return sys.modules["cowork_upperfs"]


_libc = None


def sandbox_ids():
    try:
        with open("/run/cowork-sandbox-user") as f:
            name = f.read().strip()
        import pwd
        pw = pwd.getpwnam(name)
        return pw.pw_uid, pw.pw_gid
    except (OSError, KeyError, ImportError):
        return None


class AsSandboxUser:
    """This thread's file-system identity becomes the sandbox user's (setfsuid/setfsgid are per
    thread, not broadcast to the process like setuid): the reader can open only what the sandbox
    itself could. Outside the Cowork guest (no sandbox user) it changes nothing."""

    def __enter__(self):
        global _libc
        self.ids = sandbox_ids()
        if self.ids:
            _libc = _libc or ctypes.CDLL(None, use_errno=True)
            _libc.setfsgid(self.ids[1])
            _libc.setfsuid(self.ids[0])
        return self

    def __exit__(self, *exc):
        if self.ids:
            _libc.setfsuid(0)
            _libc.setfsgid(0)


@engine_op
def read_files(msg):
    fs = upperfs()
    max_bytes = int(msg.get("maxBytes") or 2 ** 62)
    offset, length = msg.get("offset"), msg.get("length")
    out = []
    with AsSandboxUser():
        root = os.open(UPPER, fs.O_DIR)
        try:
            for p in msg["paths"]:
                rel = base64.b64decode(p)
                try:
                    fd, st = fs.open_file(root, rel)
                except (OSError, ValueError):
                    out.append(struct.pack(">Q", MISSING))
                    continue
                try:
                    if offset is not None:
                        data = fs.read_fd(fd, min(int(length), max_bytes), int(offset))
                    elif st.st_size > max_bytes:
                        out.append(struct.pack(">Q", TOO_LARGE))
                        continue
                    else:
                        data = fs.read_fd(fd, max_bytes + 1)
                        if len(data) > max_bytes:
                            out.append(struct.pack(">Q", TOO_LARGE))
                            continue
                finally:
                    os.close(fd)
                out.append(struct.pack(">Q", len(data)))
                out.append(data)
        finally:
            os.close(root)
    return b"".join(out)


@engine_op
def discard(msg):
    """Removes entries of the upper dir, as root but only through descriptors of it: a folder on
    the way that is a symlink stops the walk (ELOOP/ENOTDIR), so nothing outside is touched."""
    fs = upperfs()
    removed, errors = 0, []
    root = os.open(UPPER, fs.O_DIR)
    try:
        if msg.get("all"):
            for name in os.listdir(root):
                removed += fs.remove_tree_at(root, os.fsencode(name))
        else:
            for p in msg["paths"]:
                rel = base64.b64decode(p)
                try:
                    pfd, leaf = fs.open_parent(root, rel)
                except FileNotFoundError:
                    continue  # nothing there to discard
                except OSError as e:
                    errors.append({"path": p, "message": "not discarded: a folder on its way is not a folder (%s)" % e.strerror})
                    continue
                try:
                    removed += fs.remove_tree_at(pfd, leaf)
                except FileNotFoundError:
                    pass
                finally:
                    os.close(pfd)
    finally:
        os.close(root)
    os.sync()
    # the overlay caches what it looked up: drop it, so the workspace shows the host's version again
    write_file("/proc/sys/vm/drop_caches", "2")
    return json.dumps({"removed": removed, "errors": errors}).encode()


OPS = {"changes": scan_changes, "read": read_files, "discard": discard}


def handle(line):
    msg = None
    try:
        msg = json.loads(line)
        if not isinstance(msg, dict):
            raise ValueError("a request must be a JSON object")
        op = msg.get("op")
        if op == "run":
            start(msg)
        elif op == "kill":
            p = procs.get(msg["id"])
            if p:
                kill_group(p, getattr(signal, "SIG" + str(msg.get("signal", "KILL"))))
        elif op in OPS:
            if not isinstance(msg.get("id"), int):
                raise ValueError("an op needs a numeric id")
            OPS[op](msg)
        elif op == "ping":
            emit({"ev": "pong", "id": msg.get("id") if isinstance(msg.get("id"), int) else None})
        else:
            emit({"ev": "error", "id": msg.get("id") if isinstance(msg.get("id"), int) else None, "message": "unknown op %r" % (op,)})
    except Exception as e:  # a bad message must not take the agent down
        mid = msg.get("id") if isinstance(msg, dict) and isinstance(msg.get("id"), int) else None
        emit({"ev": "error", "id": mid, "message": "bad request: %s: %s" % (type(e).__name__, e)})


def main():
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except (ValueError, OSError):
        pass
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False); os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    os.set_blocking(0, False)
    sel.register(0, selectors.EVENT_READ, ("in", None))
    sel.register(wake_r, selectors.EVENT_READ, ("wake", None))
    buf = b""
    skipping = False  # inside a line longer than MAX_LINE: dropped up to its end
    try:
        swept = setup_cgroups()
    except OSError as e:
        swept = 0
        os.write(2, ("cowork-agent: cgroups: %s\n" % e).encode())
    emit({"ev": "hello", "pid": os.getpid(), "cgroupSwept": swept})
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
                        if q["cgroup"]:
                            remove_cgroup(q["cgroup"], 10)
                    if agent_cgroup:
                        kill_cgroup_tree(agent_cgroup)
                    os._exit(0)
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if skipping:
                        skipping = False
                        continue
                    if line.strip():
                        handle(line)
                if len(buf) > MAX_LINE:
                    buf = b""
                    skipping = True
                    emit({"ev": "error", "id": None, "message": "bad request: a line longer than %d bytes was dropped" % MAX_LINE})
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
