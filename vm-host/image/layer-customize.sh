#!/bin/sh
# mmdebstrap customize hook of a derived layer (vm-host/image/guestLayer.ts): the chroot at $1 holds
# the base image's root (unpacked by the setup hook). Installs the layer's Debian packages, runs
# its setup script once as root, trims what the base trims, then refuses the layer when it would
# weaken the guest: a setuid/setgid file the base does not hold and the recipe's allow-list does
# not name, or a changed file
# the sandbox and the guest agent rely on (bwrap, sshd and its config, the seccomp filter, the
# Cowork payload's directory, tini, the dynamic loader's preload list).
set -eu
root="$1"
packages="${COWORK_LAYER_PACKAGES-}"
setup="${COWORK_LAYER_SETUP-}"
allow="${COWORK_SETUID_ALLOW:?COWORK_SETUID_ALLOW must name the setuid allow-list file}"

# Files whose bytes must be the base's. Globs are expanded inside the chroot.
critical='/usr/bin/bwrap /usr/sbin/sshd /etc/ssh/sshd_config /etc/ssh/sshd_config.d /usr/local/lib/cowork /usr/local/sbin /usr/bin/tini /etc/ld.so.preload /usr/bin/python3'
fingerprint() {
  for f in $critical; do
    if [ -e "$root$f" ] || [ -L "$root$f" ]; then
      find "$root$f" \( -type f -o -type l \) -printf '%P %m %U %G %l\n' | sort
      find "$root$f" -type f -print0 | sort -z | xargs -0 -r sha256sum | sed "s|$root||"
    else
      echo "absent $f"
    fi
  done
}
# The base's own setuid/setgid files (the base build checked them against the same allow-list):
# the layer may keep those unchanged (they join the fingerprinted files), and add none.
setuid_files() { find "$root" -xdev -type f \( -perm -4000 -o -perm -2000 \) -printf '/%P\n' | sort; }
setuid_files > "$root/tmp/cowork-setuid.before"
critical="$critical $(tr '\n' ' ' < "$root/tmp/cowork-setuid.before")"
fingerprint > "$root/tmp/cowork-critical.before"

if [ -n "$packages" ]; then
  echo "I: cowork: installing the layer's packages: $packages"
  # shellcheck disable=SC2086 # the names are validated (Debian's grammar) and split on purpose
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -- $packages
fi

if [ -n "$setup" ]; then
  echo "I: cowork: running the layer's setup script"
  cp "$setup" "$root/tmp/cowork-guest-setup.sh"
  chroot "$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive \
    /bin/sh -e /tmp/cowork-guest-setup.sh
  rm -f "$root/tmp/cowork-guest-setup.sh"
fi

echo "I: cowork: trimming the layer"
rm -f "$root"/etc/ssh/ssh_host_* "$root/var/lib/dbus/machine-id"
: > "$root/etc/machine-id"
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
       "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/*.log

echo "I: cowork: checking the layer"
fingerprint > "$root/tmp/cowork-critical.after"
if ! cmp -s "$root/tmp/cowork-critical.before" "$root/tmp/cowork-critical.after"; then
  echo "E: cowork: the layer changed files the sandbox relies on:" >&2
  diff "$root/tmp/cowork-critical.before" "$root/tmp/cowork-critical.after" | grep '^[<>]' | head -n 20 >&2 || true
  exit 1
fi
rm -f "$root/tmp/cowork-critical.before" "$root/tmp/cowork-critical.after"
cat "$allow" "$root/tmp/cowork-setuid.before" > "$root/tmp/cowork-setuid.allowed"
bad=$(setuid_files | grep -vxF -f "$root/tmp/cowork-setuid.allowed" || true)
rm -f "$root/tmp/cowork-setuid.before" "$root/tmp/cowork-setuid.allowed"
if [ -n "$bad" ]; then
  echo "E: cowork: the layer holds setuid/setgid files outside the allow-list: $(echo "$bad" | tr '\n' ' ')" >&2
  exit 1
fi
echo "I: cowork: layer checked"
