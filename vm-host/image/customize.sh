#!/bin/sh
# mmdebstrap customize hook: runs with the finished root filesystem at $1, before it is packed.
# Takes the kernel out (its package depends on an initramfs generator we do not want in the image,
# so it is downloaded and unpacked rather than installed), takes busybox out for our initramfs, and
# removes what a read-only, per-VM-keyed guest must not carry (ssh host keys, machine-id) or does
# not need (docs, apt lists).
set -eu
root="$1"
out="${COWORK_IMAGE_OUT:?COWORK_IMAGE_OUT must name the output directory}"
kpkg="${COWORK_KERNEL_PACKAGE:?COWORK_KERNEL_PACKAGE must name the kernel meta package}"

echo "I: cowork: fetching kernel ($kpkg)"
chroot "$root" sh -eu -c '
  cd /tmp
  real=$(apt-cache depends "$1" | awk "/Depends: linux-image-/{print \$2; exit}")
  [ -n "$real" ] || { echo "E: cannot resolve $1 to a kernel package" >&2; exit 1; }
  apt-get download -q=2 "$real"
  mkdir -p /tmp/kernel
  dpkg-deb -x /tmp/linux-image-*.deb /tmp/kernel
  ver=$(ls /tmp/kernel/lib/modules)
  depmod -b /tmp/kernel "$ver"
  echo "$ver" > /tmp/kernel/version
' sh "$kpkg"
mkdir -p "$out"
rm -rf "$out/kernel"
mv "$root/tmp/kernel" "$out/kernel"
rm -f "$root"/tmp/linux-image-*.deb
cp "$root/bin/busybox" "$out/busybox"

echo "I: cowork: generating the sandbox's seccomp filter"
mkdir -p "$root/usr/local/lib/cowork"
cp "${COWORK_IMAGE_SRC:?}/seccomp-filter.py" "$root/tmp/cowork-seccomp-filter.py"
chroot "$root" python3 -I /tmp/cowork-seccomp-filter.py /usr/local/lib/cowork/seccomp.bpf
rm -f "$root/tmp/cowork-seccomp-filter.py"
[ -s "$root/usr/local/lib/cowork/seccomp.bpf" ] || { echo "E: empty seccomp filter" >&2; exit 1; }

echo "I: cowork: trimming the root filesystem"
rm -f "$root"/etc/ssh/ssh_host_* "$root/etc/machine-id" "$root/var/lib/dbus/machine-id"
: > "$root/etc/machine-id"
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
       "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/*.log
mkdir -p "$root/workspace" "$root/session" "$root/mnt/host" "$root/run/sshd"
