#!/usr/bin/python3
"""Generates the seccomp filter every sandboxed command runs under (bwrap --seccomp).

Run at image build time inside the guest root (python3-seccomp, i.e. libseccomp). Default: allow;
the calls below fail with EPERM (ENOSYS for clone3, so libc falls back to clone, whose flags we can
inspect). Syscalls of other architectures (i386, x32) are killed by libseccomp's bad-arch action,
which closes the int 0x80 / x32 bypass. docs/sandbox.md explains each group.
"""
import errno
import sys

import seccomp

EPERM = seccomp.ERRNO(errno.EPERM)
f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)

DENY = [
    # kernel attack surface with a history of escapes
    "io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "perf_event_open", "userfaultfd",
    # other processes' memory and kernel keyrings
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "keyctl", "add_key", "request_key",
    # file systems and namespaces
    "mount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
    "mount_setattr", "unshare", "setns", "chroot", "name_to_handle_at", "open_by_handle_at", "quotactl",
    # the kernel itself and the machine
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
    "swapoff", "acct", "syslog", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "iopl",
    "ioperm", "vhangup", "uselib", "lookup_dcookie", "nfsservctl", "personality",
]
for name in DENY:
    try:
        f.add_rule(EPERM, name)
    except (RuntimeError, ValueError):
        pass  # not a syscall on this architecture

# clone3 passes flags in a struct seccomp cannot read: refuse it so libc falls back to clone.
f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
# clone with any new-namespace flag (user, pid, net, mount, uts, ipc, cgroup).
for flag in (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000):
    f.add_rule(EPERM, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
# Terminal injection. The kernel reads the ioctl request as 32 bits, so compare only the low 32
# bits: a filter on the full 64-bit value would let 0x1_0000_5412 through as TIOCSTI.
for request in (0x5412, 0x541C):  # TIOCSTI, TIOCLINUX
    f.add_rule(EPERM, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, request))
# Raw link-layer sockets.
f.add_rule(EPERM, "socket", seccomp.Arg(0, seccomp.EQ, 17))  # AF_PACKET

with open(sys.argv[1], "wb") as out:
    f.export_bpf(out)
