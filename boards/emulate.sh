#!/usr/bin/env bash
# The aarch64 check: run a station bundle's selftest on an emulated 64-bit Arm CPU.
#
#   boards/emulate.sh [--setup-only] BUNDLE.pyz [SELFTEST ARGS...]
#
# 1. installs qemu-user-static, binfmt-support and debootstrap when missing (apt-get);
# 2. registers qemu-aarch64 with binfmt_misc (mounting it first if needed);
# 3. builds, once, a minimal Debian bookworm arm64 root with python3 and python3-numpy
#    (the packages a Raspberry Pi OS station has) under $FIELDPICK_ARM64_ROOT,
#    default ~/.cache/fieldpick/arm64-bookworm (outside git; ~340 MB, ~6-7 min the first time);
# 4. copies the bundle in and runs `python3 BUNDLE selftest` there with QEMU_CPU set to
#    each CPU in $FIELDPICK_QEMU_CPUS (default "cortex-a72 cortex-a76": Pi 4 and Pi 5).
#
# Emulation checks correctness and imports (aarch64 numpy 1.24 from Debian, Python 3.11,
# glibc 2.36); it says nothing about speed (qemu-user is 10-500x slower than the board).
# Needs root (apt-get, mount, chroot).  Exit status: 0 when every selftest ran every check
# and passed, 1 when a check failed, 3 when nothing failed but some checks could not run
# (a part not yet in the build; the selftest lists them), 2 on a usage or setup error.
set -euo pipefail

ROOT=${FIELDPICK_ARM64_ROOT:-$HOME/.cache/fieldpick/arm64-bookworm}
CPUS=${FIELDPICK_QEMU_CPUS:-cortex-a72 cortex-a76}
SUITE=${FIELDPICK_DEBIAN_SUITE:-bookworm}
MIRROR=${FIELDPICK_DEBIAN_MIRROR:-http://deb.debian.org/debian}

die() { echo "emulate.sh: error: $*" >&2; exit 2; }
say() { echo "emulate.sh: $*" >&2; }

setup_only=0
if [ "${1:-}" = "--setup-only" ]; then setup_only=1; shift; fi
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then sed -n '2,19p' "$0"; exit 0; fi
if [ "$setup_only" = 0 ]; then
  [ $# -ge 1 ] || die "give the bundle to check, e.g. boards/emulate.sh dist/fieldpick-rpi4.pyz"
  BUNDLE=$1; shift
  [ -f "$BUNDLE" ] || die "bundle $BUNDLE does not exist; build it with 'fieldpick bundle --board NAME'"
fi
[ "$(id -u)" = 0 ] || die "needs root (apt-get, mount, chroot); run it with sudo"

t0=$SECONDS
# 1. tools
if ! command -v qemu-aarch64-static >/dev/null || ! command -v debootstrap >/dev/null \
   || ! command -v update-binfmts >/dev/null; then
  say "installing qemu-user-static binfmt-support debootstrap"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static binfmt-support debootstrap
fi
say "tools ready after $((SECONDS - t0)) s"

# 2. binfmt_misc: lets the kernel hand aarch64 binaries to qemu-aarch64-static
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable qemu-aarch64 || true
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
  || die "qemu-aarch64 is not registered in /proc/sys/fs/binfmt_misc (update-binfmts --enable qemu-aarch64 failed)"

# 3. the arm64 root, built once; a half-built root is never used (built in ROOT.partial)
if [ ! -f "$ROOT/.fieldpick-ready" ]; then
  say "building the $SUITE arm64 root in $ROOT (once; several minutes)"
  rm -rf "$ROOT.partial"
  mkdir -p "$(dirname "$ROOT")"
  t1=$SECONDS
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-numpy \
    "$SUITE" "$ROOT.partial" "$MIRROR"
  chroot "$ROOT.partial" /usr/bin/python3 -c "import numpy, platform; print('arm64 root:', platform.machine(), platform.python_version(), 'numpy', numpy.__version__)"
  date -u +%Y-%m-%dT%H:%M:%SZ > "$ROOT.partial/.fieldpick-ready"
  rm -rf "$ROOT"
  mv "$ROOT.partial" "$ROOT"
  say "arm64 root built in $((SECONDS - t1)) s ($(du -sh "$ROOT" | cut -f1))"
else
  say "using the cached arm64 root $ROOT (built $(cat "$ROOT/.fieldpick-ready"))"
fi
say "setup done after $((SECONDS - t0)) s"
[ "$setup_only" = 1 ] && exit 0

# 4. the selftest on each emulated CPU
mkdir -p "$ROOT/opt/fieldpick"
name=$(basename "$BUNDLE")
cp "$BUNDLE" "$ROOT/opt/fieldpick/$name"
status=0
for cpu in $CPUS; do
  t2=$SECONDS
  say "selftest of $name under QEMU_CPU=$cpu"
  set +e
  QEMU_CPU=$cpu chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root QEMU_CPU="$cpu" \
    /usr/bin/python3 "/opt/fieldpick/$name" selftest --expect-machine aarch64 "$@"
  rc=$?
  set -e
  say "QEMU_CPU=$cpu: selftest exit $rc after $((SECONDS - t2)) s"
  if [ "$rc" = 3 ] && [ "$status" = 0 ]; then status=3; elif [ "$rc" != 0 ] && [ "$rc" != 3 ]; then status=1; fi
done
say "finished with status $status after $((SECONDS - t0)) s"
exit "$status"
