#!/usr/bin/env bash
# Install wanco under a prefix (docs/installing.md):
#   PREFIX/bin/wanco, PREFIX/bin/wanco-snap
#   PREFIX/lib/wanco/<triple>/libwanco_rt.a      (x86_64 and aarch64; `wanco` looks here)
#   PREFIX/share/doc/wanco/                      (README and docs/)
#   PREFIX/share/bash-completion/completions/{wanco,wanco-snap}
#   PREFIX/share/zsh/{vendor-completions,site-functions}/_wanco{,-snap}
#   PREFIX/share/fish/vendor_completions.d/wanco{,-snap}.fish
#
#   bash tools/install.sh [PREFIX]        # default /usr/local (on root's and users' PATH)
#
# Environment:
#   DESTDIR=DIR        stage into DIR/PREFIX (packaging; `wanco` is still meant to run from PREFIX)
#   WANCO_PROFILE=P    cargo profile of the binaries (default release)
#   WANCO_BIN_DIR=DIR  install the binaries already built in DIR (e.g. target/debug), build nothing
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-/usr/local}
case "$prefix" in /*) ;; *) prefix="$(pwd)/$prefix" ;; esac
profile=${WANCO_PROFILE:-release}
target_dir=${CARGO_TARGET_DIR:-target}
triples=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu)

if [ -n "${WANCO_BIN_DIR:-}" ]; then
  bin_dir=$WANCO_BIN_DIR
  target_dir=$(dirname "$bin_dir")
else
  export LLVM_SYS_191_PREFIX=${LLVM_SYS_191_PREFIX:-/usr/lib/llvm-19}
  echo "==> cargo build --profile $profile -p wanco-cli"
  cargo build --quiet --profile "$profile" -p wanco-cli --bins
  bash tools/build-runtime.sh
  bin_dir=$target_dir/$profile
fi

for b in wanco wanco-snap; do
  [ -x "$bin_dir/$b" ] || { echo "install: $bin_dir/$b not built" >&2; exit 1; }
done
for t in "${triples[@]}"; do
  [ -f "$target_dir/$t/release/libwanco_rt.a" ] || {
    echo "install: $target_dir/$t/release/libwanco_rt.a not built; run \`bash tools/build-runtime.sh\`" >&2; exit 1; }
done

dest=${DESTDIR:-}$prefix
# Writing to a system prefix as a user: only the copying runs under sudo.
SUDO=""
probe=$dest
while [ ! -e "$probe" ]; do probe=$(dirname "$probe"); done
if [ ! -w "$probe" ] && [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

echo "==> install into ${DESTDIR:+$DESTDIR}$prefix"
$SUDO install -d "$dest/bin"
for b in wanco wanco-snap; do
  $SUDO install -m 755 "$bin_dir/$b" "$dest/bin/$b"
done
for t in "${triples[@]}"; do
  $SUDO install -D -m 644 "$target_dir/$t/release/libwanco_rt.a" "$dest/lib/wanco/$t/libwanco_rt.a"
done
$SUDO install -d "$dest/share/doc/wanco"
$SUDO install -m 644 README.md docs/*.md "$dest/share/doc/wanco/"

# Completions, made by the binaries themselves (clap_complete).
zsh_dir=site-functions                         # /usr/local/share/zsh/site-functions is on zsh's fpath
[ "$prefix" = /usr ] && zsh_dir=vendor-completions  # where Debian packages put theirs
comp=$(mktemp -d)
trap 'rm -rf "$comp"' EXIT
for b in wanco wanco-snap; do
  "$bin_dir/$b" completions bash > "$comp/$b.bash"
  "$bin_dir/$b" completions zsh > "$comp/_$b"
  "$bin_dir/$b" completions fish > "$comp/$b.fish"
  $SUDO install -D -m 644 "$comp/$b.bash" "$dest/share/bash-completion/completions/$b"
  $SUDO install -D -m 644 "$comp/_$b" "$dest/share/zsh/$zsh_dir/_$b"
  $SUDO install -D -m 644 "$comp/$b.fish" "$dest/share/fish/vendor_completions.d/$b.fish"
done
echo "==> installed: $prefix/bin/wanco ($("$dest/bin/wanco" --version))"
