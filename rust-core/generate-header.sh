#!/usr/bin/env bash
# Regenerates the committed C header from src/ffi with the pinned cbindgen (a
# dev-dependency), through the same code the drift test runs.
set -euo pipefail
cd "$(dirname "$0")"
OSW_WRITE_HEADER=1 cargo test --quiet -p openspace-webrtc-core --test header
echo "wrote include/openspace_webrtc.h"
