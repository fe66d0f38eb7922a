#!/usr/bin/env bash
# Regenerates the committed C header from src/ffi with the pinned cbindgen.
set -euo pipefail
cd "$(dirname "$0")"
cbindgen --config cbindgen.toml --crate openspace-webrtc-core --output include/openspace_webrtc.h .
