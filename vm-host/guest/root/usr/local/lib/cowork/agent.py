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
                {"op":"run","id":6,"argv":[...],"cwd":"/workspace","timeoutMs":N,"cgroup":{...},
                 "sandbox":{"key":"k1","argv":[bwrap argv],"user":{...},"fds":{"10":"/path"},"controlFd":11,"pidsMax":N}}
                 (run in the task's sandbox "k1", started with that argv on its first command or after it
                 died; argv, cwd and env are then the command's inside it)
                {"op":"sandbox-stop","id":7,"key":"k1"}  (kills the whole sandbox, background processes
                 included; answered with exit 0)
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

The task's sandbox: one bwrap per task (sandbox-exec is its pid 1, as the sandbox user), made on
its first command; each command is handed to it over a socketpair with its stdin/stdout/stderr
pipes and a descriptor of its own cgroup's cgroup.procs, which this agent (root) made under the
sandbox's cgroup agent-…/sb-<key>/ with the command's limits and opened for writing. The executor
cannot create or reach any other cgroup: the descriptors are all it gets, and the kernel checks a
cgroup.procs write against the opener (root, the root cgroup namespace). Timeout, abort and a limit
hit kill the command's cgroup (cgroup.kill), never the sandbox; when a command exits normally the
executor hangs up its process group (SIGHUP), and what survives that (nohup, setsid) keeps running
in the command's cgroup (its output read and dropped) until the sandbox stops (sandbox-stop, the
channel closing, or the agent dying: bwrap --die-with-parent, and the sweep).

Egress: the agent starts egress-relay (the guest's end of the path to the host's proxy: the unix
sockets the sandbox's relays connect to, carried to QEMU's forwarding address) before it joins its
own cgroup, and the first sandbox waits until it listens. One relay serves the whole VM.

Root and the upper dir: the scan, the reader and discard never follow a symlink the sandbox made
(upperfs.py); the reader also drops its file-system identity to the sandbox user (setfsuid, per
thread), so it can read only what the sandbox itself could.
"""
import base64, ctypes, fcntl, json, os, resource, selectors, signal, socket, struct, subprocess, sys, threading, time

CHUNK = 65536
HERE = os.path.dirname(os.path.abspath(__file__))
SHIM = os.path.join(HERE, "cgroup-exec")
SANDBOX_EXEC = os.path.join(HERE, "sandbox-exec")
EGRESS_RELAY = os.path.join(HERE, "egress-relay")
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
sandboxes = {}  # key -> dict(key, cgroup, popen, sock, ids, lingering, detached)
egress_relay = None  # the guest's end of the egress path (egress-relay), started with this agent


def start_egress_relay():
    """egress-relay (the egress sockets -> QEMU's forwarding address) in its own session: one per VM
    (it exits at once when another already listens), living as long as the guest, like sshd did."""
    global egress_relay
    egress_relay = subprocess.Popen([EGRESS_RELAY], executable=EGRESS_RELAY, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, cwd="/", env={"PATH": "/usr/bin:/bin"}, start_new_session=True, close_fds=True)


def await_egress_relay(limit_s=10.0):
    """Before the first sandbox: its relays find the egress sockets listening (or the reason why not)."""
    global egress_relay
    p, egress_relay = egress_relay, None
    if p is None:
        return
    line = b""
    ready = selectors.DefaultSelector()
    ready.register(p.stdout, selectors.EVENT_READ)
    if ready.select(limit_s):
        line = p.stdout.readline()
    ready.close()
    p.stdout.close()
    if line.strip() != b"ready":
        why = b""
        if p.poll() is not None:
            why = p.stderr.read().strip()[-500:]
        else:
            p.kill()
        p.stderr.close()
        raise OSError("the egress relay did not start within %g s%s" % (limit_s, (": " + why.decode(errors="replace")) if why else ""))
    p.stderr.close()


def emit(obj):
    data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
    with out_lock:
        view = memoryview(data)
        while view:
            n = os.write(1, view)
            view = view[n:]


def kill_group(p, sig=signal.SIGKILL):
    if p.get("sandbox"):
        # in the task's sandbox: the executor signals the command's process group (its pid is
        # one of the sandbox's pid namespace); SIGKILL is the command's whole cgroup, below
        # (first, so that it reports the exit at once instead of hanging up the group)
        if sig == signal.SIGKILL:
            p["killed"] = True
        sb_send(p["sandbox"], {"op": "kill", "id": p["id"], "signal": int(sig)})
    else:
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


def check_name(name):
    if not isinstance(name, str) or not name.replace("-", "").isalnum() or len(name) > 100:
        raise ValueError("bad cgroup name %r" % (name,))
    return name


def make_cgroup(spec, parent=None):
    """The command's cgroup with its limits, or an exception with nothing left behind."""
    name = check_name(spec["name"])
    if agent_cgroup is None:
        raise OSError("cgroups are not available in this guest")
    path = os.path.join(parent or agent_cgroup, name)
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


def high_fd(fd):
    """A copy of fd numbered 100 or above (cgroup-exec renumbers into 10, 11: never onto a source)."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)
    os.close(fd)
    return new


def sb_send(sb, obj, fds=()):
    try:
        socket.send_fds(sb["sock"], [json.dumps(obj, separators=(",", ":")).encode()], list(fds))
        return True
    except OSError:
        return False


def start_sandbox(spec):
    """The task's sandbox: bwrap (argv from the host's sandbox.ts) running sandbox-exec as the
    sandbox user, in agent-…/sb-<key>/init; its socket to us is registered with the selector."""
    key = check_name(spec["key"])
    await_egress_relay()
    if agent_cgroup is None:
        raise OSError("cgroups are not available in this guest")
    user = spec["user"]
    argv = [str(a) for a in spec["argv"]]
    ctl = int(spec["controlFd"])
    path = os.path.join(agent_cgroup, "sb-" + key)
    opened = []
    a = b = None
    try:
        os.mkdir(path)
        with open(os.path.join(path, "cgroup.subtree_control"), "w") as f:
            f.write("+cpu +memory +pids")
        if spec.get("pidsMax"):
            with open(os.path.join(path, "pids.max"), "w") as f:
                f.write(str(int(spec["pidsMax"])))
        os.mkdir(os.path.join(path, "init"))
        cgfd = high_fd(os.open(os.path.join(path, "init", "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC))
        opened.append(cgfd)
        fdmap = []
        for num, fpath in (spec.get("fds") or {}).items():
            fd = high_fd(os.open(fpath, os.O_RDONLY | os.O_CLOEXEC))
            opened.append(fd)
            fdmap.append("%d:%d" % (fd, int(num)))
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for s_ in (a, b):
            try:
                s_.setsockopt(socket.SOL_SOCKET, 32, 4 << 20)  # SO_SNDBUFFORCE: a long command line is one message
            except OSError:
                pass
        bfd = high_fd(os.dup(b.fileno()))
        b.close()
        b = None
        opened.append(bfd)
        fdmap.append("%d:%d" % (bfd, ctl))
        child = subprocess.Popen([SHIM, str(cgfd), ",".join(fdmap), "--"] + argv, executable=SHIM,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 cwd="/", env={"PATH": "/usr/bin:/bin"}, start_new_session=True, close_fds=True,
                                 pass_fds=opened, user=int(user["uid"]), group=int(user["gid"]), extra_groups=[])
    except BaseException:
        for fd in opened:
            os.close(fd)
        for s_ in (a, b):
            if s_ is not None:
                s_.close()
        if os.path.isdir(path):
            kill_cgroup_tree(path)
        raise
    for fd in opened:
        os.close(fd)
    a.setblocking(False)
    sb = {"key": key, "cgroup": path, "popen": child, "sock": a, "ids": set(), "lingering": [], "detached": set(), "stderr": b""}
    sandboxes[key] = sb
    sel.register(a.fileno(), selectors.EVENT_READ, ("sb", sb))
    # what bwrap or the executor say (e.g. why the sandbox could not start): told to the commands it ends
    os.set_blocking(child.stderr.fileno(), False)
    sel.register(child.stderr.fileno(), selectors.EVENT_READ, ("sberr", sb))
    return sb


def on_sandbox_stderr(sb):
    if sb["popen"].stderr.closed:
        return  # closed earlier in this round of events
    try:
        data = os.read(sb["popen"].stderr.fileno(), CHUNK)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if data:
        sb["stderr"] = (sb["stderr"] + data)[-4096:]
    else:
        sel.unregister(sb["popen"].stderr.fileno())
        sb["popen"].stderr.close()


def stop_sandbox(sb, requested=False):
    """Kills the sandbox and everything in it; its commands still running end as killed (told why
    on their stderr unless the host asked for it)."""
    if sandboxes.get(sb["key"]) is not sb:
        return
    del sandboxes[sb["key"]]
    write_file(os.path.join(sb["cgroup"], "cgroup.kill"), "1")
    try:
        sel.unregister(sb["sock"].fileno())
    except (KeyError, ValueError):
        pass
    sb["sock"].close()
    if not sb["popen"].stderr.closed:
        on_sandbox_stderr(sb)  # what it said last (closed here at its end)
    if not sb["popen"].stderr.closed:
        sel.unregister(sb["popen"].stderr.fileno())
        sb["popen"].stderr.close()
    for fd in list(sb["detached"]):
        close_detached(sb, fd)
    for cid in list(sb["ids"]):
        p = procs.get(cid)
        if p:
            if not requested:
                msg = b"cowork: the task's sandbox ended" + (b": " + sb["stderr"].strip() if sb["stderr"].strip() else b"") + b"\n"
                emit({"ev": "out", "id": cid, "fd": 2, "b64": base64.b64encode(msg).decode()})
            p["killed"] = True
            p["status"] = signal.SIGKILL  # a wait status: killed by SIGKILL
            finish(p)
    kill_cgroup_tree(sb["cgroup"])


def close_detached(sb, fd):
    sb["detached"].discard(fd)
    try:
        sel.unregister(fd)
    except (KeyError, ValueError):
        pass
    os.close(fd)


def on_sandbox(sb):
    """A message of the task's executor (or its end)."""
    while sandboxes.get(sb["key"]) is sb:
        try:
            data = sb["sock"].recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            stop_sandbox(sb)
            return
        try:
            ev = json.loads(data)
        except ValueError:
            continue
        p = procs.get(ev.get("id"))
        if not p or p.get("sandbox") is not sb:
            continue
        if ev.get("ev") == "started":
            p["pid"] = ev.get("pid")
            emit({"ev": "started", "id": p["id"], "pid": int(ev.get("pid") or 0)})
        elif ev.get("ev") == "exit":
            p["status"] = int(ev["status"])
            finish(p)
        elif ev.get("ev") == "error":
            fail_sandboxed(p)
            emit({"ev": "error", "id": p["id"], "message": "the sandbox refused the command: %s" % ev.get("message")})


def fail_sandboxed(p):
    procs.pop(p["id"], None)
    p["sandbox"]["ids"].discard(p["id"])
    for fd in list(p["fds"]):
        sel.unregister(fd)
        os.close(fd)
    p["fds"].clear()
    if p["cgroup"]:
        write_file(os.path.join(p["cgroup"], "cgroup.kill"), "1")
        p["sandbox"]["lingering"].append(p["cgroup"])


def start_sandboxed(msg):
    """A command in the task's sandbox: its cgroup made here, the rest done by the executor."""
    cid = msg["id"]
    spec = msg["sandbox"]
    sb = sandboxes.get(spec.get("key"))
    if sb is None or sb["popen"].poll() is not None:
        if sb is not None:
            stop_sandbox(sb)
        sb = start_sandbox(spec)
    # cgroups of earlier commands, removed once their background processes are gone
    sb["lingering"] = [c for c in sb["lingering"] if not try_rmdir(c)]
    argv = [a for a in msg["argvB64"]] if msg.get("argvB64") else [base64.b64encode(str(a).encode()).decode() for a in msg["argv"]]
    if not argv:
        raise ValueError("empty argv")
    env = {str(k): str(v) for k, v in (msg.get("env") or {}).items()}
    stdin = base64.b64decode(msg["stdin"]) if msg.get("stdin") else None
    opened = []
    cgroup = None
    limits = dict(msg.get("cgroup") or {})
    limits.pop("name", None)
    try:
        cgroup = command_cgroup(sb, limits)
        cgfd = os.open(os.path.join(cgroup, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
        opened.append(cgfd)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe()
        opened += [out_r, out_w, err_r, err_w, in_r, in_w]
        t0 = time.monotonic()
        if not sb_send(sb, {"op": "run", "id": cid, "argv": argv, "cwd": msg.get("cwd") or "/workspace", "env": env}, [in_r, out_w, err_w, cgfd]):
            raise OSError("the task's sandbox does not answer")
    except BaseException:
        for fd in opened:
            os.close(fd)
        if cgroup:
            remove_cgroup(cgroup)
        raise
    for fd in (cgfd, in_r, out_w, err_w):
        os.close(fd)
    prefetch_cgroup(sb, limits)
    if stdin:
        threading.Thread(target=feed_stdin, args=(in_w, stdin), daemon=True).start()
    else:
        os.close(in_w)
    timeout = msg.get("timeoutMs")
    p = {"id": cid, "pid": None, "sandbox": sb, "fds": {out_r: 1, err_r: 2}, "t0": t0, "cgroup": cgroup, "limits": limits,
         "deadline": t0 + timeout / 1000.0 if timeout else None, "timedOut": False, "status": None}
    procs[cid] = p
    sb["ids"].add(cid)
    for fd in (out_r, err_r):
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ, ("out", p))


# Idle command cgroups kept per sandbox for the next commands (made ahead, or left clean by one).
CGROUP_POOL = 2


def command_cgroup(sb, limits):
    """A cgroup for the next command: an idle one of the pool with the same limits, else a new
    one. Made by this agent (root); the sandbox only ever gets a descriptor of its cgroup.procs."""
    pool = sb.setdefault("pool", [])
    while pool:
        path, had = pool.pop()
        if had == limits:
            return path
        remove_cgroup(path, 1)
    sb["seq"] = sb.get("seq", 0) + 1
    return make_cgroup(dict(limits, name="cmd-%d" % sb["seq"]), sb["cgroup"])


def prefetch_cgroup(sb, limits):
    """mkdir of a cgroup with limits costs milliseconds under emulation: the first one is made here,
    off the next command's path; later ones come back to the pool when their command ends clean."""
    if sb.get("pool") or sandboxes.get(sb["key"]) is not sb:
        return
    try:
        sb["seq"] = sb.get("seq", 0) + 1
        sb["pool"] = [(make_cgroup(dict(limits, name="cmd-%d" % sb["seq"]), sb["cgroup"]), limits)]
    except (OSError, ValueError):
        pass


def recycle_cgroup(sb, p, clean):
    """After its command: the cgroup goes back to the pool when nothing is left in it and nothing
    was counted in it (no OOM kill, no pids.max hit: its events stay zero for the next command),
    instead of an rmdir now and a mkdir with limits later; else it is removed (once empty)."""
    path = p["cgroup"]
    if clean and sandboxes.get(sb["key"]) is sb and len(sb.setdefault("pool", [])) < CGROUP_POOL \
            and read_events(os.path.join(path, "cgroup.events")).get("populated", 1) == 0:
        sb["pool"].append((path, p["limits"]))
    elif not try_rmdir(path):
        sb["lingering"].append(path)  # removed when its background processes are gone


def try_rmdir(path):
    try:
        os.rmdir(path)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def start(msg):
    cid = msg["id"]
    if not isinstance(cid, int) or cid in procs:
        raise ValueError("bad or duplicate id %r" % (cid,))
    if msg.get("sandbox"):
        return start_sandboxed(msg)
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
    if p.get("sandbox"):
        return finish_sandboxed(p)
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


def finish_sandboxed(p):
    # The command's shell is gone: collect what its pipes still hold; a command that was killed or
    # hit a limit ends whole (its cgroup), else what survived the executor's hang-up keeps running
    # (its output read and dropped) until the sandbox stops.
    sb = p["sandbox"]
    eof = set()
    for fd in list(p["fds"]):
        while True:
            try:
                data = os.read(fd, CHUNK)
            except BlockingIOError:
                break
            if not data:
                eof.add(fd)
                break
            emit({"ev": "out", "id": p["id"], "fd": p["fds"][fd], "b64": base64.b64encode(data).decode()})
    oom = pids_limited = False
    if p["cgroup"]:
        oom = read_events(os.path.join(p["cgroup"], "memory.events")).get("oom_kill", 0) > 0
        pids_limited = read_events(os.path.join(p["cgroup"], "pids.events")).get("max", 0) > 0
    kill_all = p["timedOut"] or p.get("killed") or oom or pids_limited
    detached = set()
    for fd in list(p["fds"]):
        del p["fds"][fd]
        if not kill_all and fd not in eof and sandboxes.get(sb["key"]) is sb:
            sel.modify(fd, selectors.EVENT_READ, ("detached", sb))
            sb["detached"].add(fd)
            detached.add(fd)
        else:
            sel.unregister(fd)
            os.close(fd)
    sb["ids"].discard(p["id"])
    if kill_all and p["cgroup"]:
        write_file(os.path.join(p["cgroup"], "cgroup.kill"), "1")
    st = p["status"]
    code = os.WEXITSTATUS(st) if os.WIFEXITED(st) else None
    sig = signal.Signals(os.WTERMSIG(st)).name[3:] if os.WIFSIGNALED(st) else None
    procs.pop(p["id"], None)
    emit({"ev": "exit", "id": p["id"], "code": code, "signal": sig, "timedOut": p["timedOut"],
          "ms": int((time.monotonic() - p["t0"]) * 1000), "oomKilled": oom, "pidsLimited": pids_limited})
    if p["cgroup"]:
        recycle_cgroup(sb, p, not kill_all and not detached)


def reap():
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        for sb in list(sandboxes.values()):
            if sb["popen"].pid == pid:
                sb["popen"].returncode = os.waitstatus_to_exitcode(st)
                stop_sandbox(sb)
        for p in list(procs.values()):
            if p["pid"] == pid and not p.get("sandbox"):
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


def sandbox_stop(msg):
    t0 = time.monotonic()
    sb = sandboxes.get(msg.get("key"))
    if sb:
        stop_sandbox(sb, requested=True)
    reply(msg["id"], b"", t0)


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
        elif op == "sandbox-stop":
            if not isinstance(msg.get("id"), int):
                raise ValueError("an op needs a numeric id")
            sandbox_stop(msg)
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
        # before this agent joins cowork-engine (one CPU, a memory cap): the relay carries every
        # task's downloads and stays where sshd, which carried them before, runs
        start_egress_relay()
    except OSError as e:
        os.write(2, ("cowork-agent: egress relay: %s\n" % e).encode())
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
                    for sb in list(sandboxes.values()):
                        write_file(os.path.join(sb["cgroup"], "cgroup.kill"), "1")
                    for q in list(procs.values()):
                        if q.get("sandbox"):
                            continue
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
            elif kind == "sb":
                on_sandbox(p)
            elif kind == "sberr":
                on_sandbox_stderr(p)
            elif kind == "detached":
                if key.fd not in p["detached"]:
                    continue  # closed earlier in this round of events
                try:
                    data = os.read(key.fd, CHUNK)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    close_detached(p, key.fd)
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
