#!/usr/bin/env bash
# The end-to-end check against a real OpenSpace v0.22.0 build with the WebRtc module.
#
#     OPENSPACE_ROOT=/path/to/OpenSpace tests/openspace/run.sh
#
# Builds the orchestrator (never OpenSpace), then runs check.mjs inside a loopback-only
# network namespace. Without OPENSPACE_ROOT it says so and exits 2: it never passes untested.
# The last line of its output reads "N passed, M failed". Not part of scripts/test.sh.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${repo}"

if [[ -z "${OPENSPACE_ROOT:-}" ]]; then
    echo "OPENSPACE_ROOT is not set: point it at an OpenSpace v0.22.0 build with the WebRtc"
    echo "module (the folder that holds bin/OpenSpace and openspace.cfg). Nothing was tested."
    echo "0 passed, 1 failed"
    exit 2
fi
if [[ ! -x "${OPENSPACE_ROOT}/bin/OpenSpace" ]]; then
    echo "${OPENSPACE_ROOT}/bin/OpenSpace is not there: build OpenSpace with the module first"
    echo "(openspace-module/README.md). Nothing was tested."
    echo "0 passed, 1 failed"
    exit 2
fi

cargo build --quiet -p orchestrator || { echo "0 passed, 1 failed"; exit 1; }
if [[ ! -d tests/e2e/node_modules/playwright-core ]]; then
    (cd tests/e2e && npm ci --silent) || { echo "0 passed, 1 failed"; exit 1; }
fi
OPENSPACE_ROOT="$(cd "${OPENSPACE_ROOT}" && pwd)" \
    exec scripts/in-loopback-netns.sh node tests/openspace/check.mjs
