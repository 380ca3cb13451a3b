#!/usr/bin/env bash
# Build the Debian package: target/debian/wanco_<version>_<arch>.deb
# (`just deb`; docs/installing.md).
#
# Made with dpkg-deb and dpkg-shlibdeps (dpkg-dev, installed by tools/setup.sh)
# rather than cargo-deb: the package holds files cargo does not build for
# this target (the runtime libraries for x86_64 and aarch64, the completions
# the built binaries print), which tools/install.sh lays out anyway, and
# cargo-deb would be one more tool compiled from source on every fresh
# machine (CI) for what two dpkg commands do.
#
# Depends:    the shared libraries the binaries load (dpkg-shlibdeps: libc6,
#             libllvm19, libstdc++6, ...), plus what `wanco compile` runs to link
#             a program: `cc` (gcc) and the C library's crt files and libraries
#             (libc6-dev: crt1.o, libc, libm, libpthread, libdl).
# Recommends: the aarch64 cross linker and C library (`--target aarch64`).
# Suggests:   qemu-user (to run aarch64 programs on x86_64; `wanco-snap diff
#             --against-interp --binary` of the other ISA).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
arch=$(dpkg --print-architecture)
out_dir=${CARGO_TARGET_DIR:-target}/debian
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/wanco_${version}_$arch

DESTDIR=$root bash tools/install.sh /usr

install -D -m 644 packaging/copyright "$root/usr/share/doc/wanco/copyright"

# Shared-library dependencies of the binaries, from the packages' shlibs
# and symbols files (dpkg-shlibdeps reads debian/control of a source tree:
# a minimal one in a scratch directory).
mkdir -p "$stage/src/debian"
printf 'Source: wanco\n\nPackage: wanco\nArchitecture: any\n' > "$stage/src/debian/control"
shlibs=$(cd "$stage/src" && dpkg-shlibdeps -O "$root/usr/bin/wanco" "$root/usr/bin/wanco-snap" 2>/dev/null \
  | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

mkdir -p "$root/DEBIAN"
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SHLIBS@/$shlibs/" \
    -e "s/@SIZE@/$installed_size/" packaging/control.in > "$root/DEBIAN/control"
mkdir -p "$out_dir"
deb=$out_dir/wanco_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "==> $deb"
dpkg-deb --field "$deb" Package Version Depends Recommends Suggests
