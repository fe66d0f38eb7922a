#!/usr/bin/env bash
# Runs a command in a fresh network namespace whose only interface is loopback.
#
# Every test or benchmark that opens a WebRTC peer connection runs through this: WebRTC
# gathers candidates on every interface, and nothing may leave this machine's loopback.
# Needs root (or unprivileged user namespaces, then via `unshare -rn`).
set -euo pipefail
if [[ $(id -u) -eq 0 ]]; then
    exec unshare -n -- sh -c 'ip link set lo up && exec "$@"' sh "$@"
else
    exec unshare -rn -- sh -c 'ip link set lo up && exec "$@"' sh "$@"
fi
