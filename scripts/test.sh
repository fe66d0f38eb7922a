#!/usr/bin/env bash
# The whole test suite (the README's test command; .ci/run calls exactly this).
#
# Stages, each stopping the run on failure:
#   1. setup          missing apt/npm packages only (scripts/setup-debian.sh)
#   2. build          the Rust workspace and its tests, the GL test host (CMake)
#   3. unit           cargo tests that need no network namespace, ctest, node unit tests,
#                     the OpenSpace module's static checks
#   4. streaming      rust-core's WebRTC tests, the orchestrator's conformance tests, its
#                     database and web-role tests again on a private PostgreSQL cluster, and
#                     the browser end-to-end tests, inside a loopback-only network namespace
#                     (the multi-host one, fleet.test.js, builds its machines as namespaces of
#                     its own in there)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$SECONDS

stage() { printf '\n==== %s (%ds)\n' "$1" "$((SECONDS - started))"; }

stage "setup"
scripts/setup-debian.sh

stage "build"
cargo build --workspace --all-targets --locked
cmake -S tests/gl-host -B build/gl-host -G Ninja -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/gl-host
export OSW_GL_HOST="$root/build/gl-host/osw-gl-host"

stage "unit: static checks"
openspace-module/check.sh
stage "unit: ctest (gl-host)"
ctest --test-dir build/gl-host --output-on-failure
stage "unit: web modules (node --test)"
node --test web/test/

stage "streaming: cargo test (loopback-only namespace)"
scripts/in-loopback-netns.sh cargo test --workspace --locked --offline -- --test-threads=1
stage "streaming: database and web-role tests on PostgreSQL (private cluster, loopback-only namespace)"
scripts/in-loopback-netns.sh scripts/with-postgres.sh \
    cargo test -p orchestrator --features postgres --locked \
    --lib --test web --test web_limits --test web_connections --test web_serving --test web_storage \
    --test openspace_api --test web_roles \
    -- --test-threads=1
stage "streaming: browser end-to-end (loopback-only namespace, Xvfb; fleet.test.js: machines as namespaces)"
# fleet.test.js runs its web role on PostgreSQL: the binary must have the `postgres` feature
# (the stage above built it so; this says so, and costs nothing when it is up to date).
cargo build -p orchestrator --features postgres --locked
scripts/in-loopback-netns.sh sh -c 'cd tests/e2e && npm test'

stage "done"
echo "all tests passed in $((SECONDS - started)) s"
