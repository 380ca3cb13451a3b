#!/usr/bin/env bash
# Build the runtime library (libwanco_rt.a) for every target ISA. A `wanco`
# built in this checkout finds it under target/<triple>/release/; an
# installed one under PREFIX/lib/wanco/<triple>/ (tools/install.sh,
# docs/installing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
for t in x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu; do
  cargo build --quiet --release -p wanco-rt --target "$t"
done
