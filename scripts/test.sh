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

# Every cargo step below selects the same packages and features, so each crate and test
# binary is built once: a step that picks one package (`-p`) or other features resolves the
# dependencies' features anew and builds a second copy of them. `postgres` only adds a
# driver: SQLite stays the default, and the tests use PostgreSQL only when OSW_TEST_POSTGRES
# is set. A run that starts clean (CI) has no use for incremental state, only its disk.
cargo_selection=(--workspace --features orchestrator/postgres --locked)
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi

stage "build"
cargo build "${cargo_selection[@]}" --all-targets
# The GL host links the archive the build above made instead of running cargo for rust-core
# alone (which would be one of those second copies).
cmake -S tests/gl-host -B build/gl-host -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DOSW_RUST_CORE_PREBUILT="$root/target/debug/libopenspace_webrtc.a" >/dev/null
cmake --build build/gl-host
export OSW_GL_HOST="$root/build/gl-host/osw-gl-host"

stage "unit: static checks"
openspace-module/check.sh
stage "unit: ctest (gl-host)"
ctest --test-dir build/gl-host --output-on-failure
stage "unit: web modules (node --test)"
node --test web/test/

stage "streaming: cargo test (loopback-only namespace)"
scripts/in-loopback-netns.sh cargo test "${cargo_selection[@]}" --offline -- --test-threads=1
stage "streaming: database and web-role tests on PostgreSQL (private cluster, loopback-only namespace)"
# --lib runs every crate's unit tests (the orchestrator's database ones among them): a few
# seconds, where `-p orchestrator` would build a second copy of the dependencies.
scripts/in-loopback-netns.sh scripts/with-postgres.sh \
    cargo test "${cargo_selection[@]}" --offline \
    --lib --test web --test web_limits --test web_connections --test web_serving --test web_storage \
    --test openspace_api --test web_roles \
    -- --test-threads=1
stage "streaming: browser end-to-end (loopback-only namespace, Xvfb; fleet.test.js: machines as namespaces)"
# fleet.test.js runs its web role on PostgreSQL: the orchestrator built above has the feature.
scripts/in-loopback-netns.sh sh -c 'cd tests/e2e && npm test'

stage "done"
echo "all tests passed in $((SECONDS - started)) s"
