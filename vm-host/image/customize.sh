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

echo "I: cowork: configuring the toolbox"
# git for the sandbox's per-task user (its HOME is a fresh /tmp/home, so the defaults live here):
# an identity for commits, /workspace trusted whoever owns it (the host user's uid on the share),
# no credential helper (no secret is ever stored in the guest), ssh through the egress proxy.
cat > "$root/etc/gitconfig" <<'GITCONFIG'
[user]
	name = Cowork agent
	email = agent@cowork.invalid
[safe]
	directory = /workspace
[credential]
	helper =
[init]
	defaultBranch = main
[advice]
	detachedHead = false
[core]
	sshCommand = ssh -o ProxyCommand='socat - PROXY:127.0.0.1:%h:%p,proxyport=3128'
GITCONFIG
# npm and pip: nothing to nag about over the proxy; their caches stay under HOME (/tmp/home/.npm,
# /tmp/home/.cache/pip) unless npm_config_cache / PIP_CACHE_DIR point elsewhere.
printf 'fund=false\nupdate-notifier=false\n' > "$root/etc/npmrc"
printf '[global]\ndisable-pip-version-check = true\n' > "$root/etc/pip.conf"
# Debian names fd-find's command fdfind; agents call it fd.
[ -x "$root/usr/bin/fdfind" ] || { echo "E: fd-find is missing /usr/bin/fdfind" >&2; exit 1; }
ln -sf /usr/bin/fdfind "$root/usr/local/bin/fd"

echo "I: cowork: trimming the root filesystem"
rm -f "$root"/etc/ssh/ssh_host_* "$root/etc/machine-id" "$root/var/lib/dbus/machine-id"
: > "$root/etc/machine-id"
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
       "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/*.log
mkdir -p "$root/workspace" "$root/session" "$root/mnt/host" "$root/run/sshd"
