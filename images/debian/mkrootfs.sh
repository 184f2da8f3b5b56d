#!/usr/bin/env bash
# Builds the root filesystem of the base image local/debian:bookworm as a tar:
#   mkrootfs.sh OUT.tar
# debootstrap (minbase) from the Debian mirror, then the usual container
# tweaks (no recommends, no docs/man pages, apt caches cleaned).
# scripts/images.sh caches OUT.tar keyed by the sha256 of THIS file: any change
# here rebuilds the base image; changes elsewhere do not.
set -euo pipefail

out=${1:?usage: mkrootfs.sh OUT.tar}
suite=bookworm
mirror=http://deb.debian.org/debian
security=http://deb.debian.org/debian-security

work=$(mktemp -d "${TMPDIR:-/tmp}/rootfs.XXXXXX")
root=$work/root
cleanup() {
  # debootstrap mounts proc/sys inside the target; never leave them behind.
  local m
  for m in "$root/proc" "$root/sys" "$root/dev/pts" "$root/dev"; do
    mountpoint -q "$m" 2>/dev/null && umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  [[ -f $root/debootstrap/debootstrap.log ]] && tail -n 30 "$root/debootstrap/debootstrap.log" >&2
  echo "mkrootfs: debootstrap failed" >&2
  exit 1
}

cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
EOF

# Like Debian's official container images.
cat >"$root/etc/apt/apt.conf.d/docker-no-recommends" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
cat >"$root/etc/apt/apt.conf.d/docker-gzip-indexes" <<'EOF'
Acquire::GzipIndexes "true";
EOF
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
# Policy that stops package scripts from starting services during builds.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
  "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log "$root"/var/log/apt/* \
  "$root"/debootstrap "$root"/tmp/* "$root"/usr/share/doc/*/changelog* \
  "$root"/usr/share/man/* "$root"/usr/share/info/*
: >"$root/etc/machine-id"
rm -f "$root/etc/hostname" "$root/etc/resolv.conf"  # docker provides them

# /dev, /proc and /sys are provided by the container runtime.
tar --numeric-owner --xattrs -C "$root" \
  --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* \
  -cf "$out.tmp" .
mv "$out.tmp" "$out"
