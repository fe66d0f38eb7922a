#!/usr/bin/env bash
# The main job (the README's run command): installs what is missing, builds the orchestrator
# and the GL test host (release), and starts the orchestrator with both roles: the supervisor,
# which launches a test host for each instance, and the web origin, which serves the product.
# Prints the URL to open.
#
#   scripts/run.sh [--width W] [--height H] [--fps F] [--capture gl|readback]
#                  [--encoder auto|x264|openh264|vp8|nvh264] [--web-port P] [--slots N]
#                  [--openspace DIR] [-- MORE ORCHESTRATOR OPTIONS]
#
# Host options go to every instance. --openspace DIR launches a real OpenSpace build with the
# WebRtc module instead of the test host (openspace-module/README.md). Without a DISPLAY each
# instance renders under its own Xvfb. Ctrl-C stops the orchestrator and every instance.
set -euo pipefail
cd "$(dirname "$0")/.."

web_port=4690
slots=3
host_args=()
openspace=""
more=()
while (($#)); do
    case $1 in
        --web-port) web_port=$2; shift 2 ;;
        --slots) slots=$2; shift 2 ;;
        --openspace) openspace=$2; shift 2 ;;
        --) shift; more=("$@"); break ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) host_args+=("$1"); shift ;;
    esac
done

scripts/setup-debian.sh
cargo build -p orchestrator --bin orchestrator
cmake -S tests/gl-host -B build/gl-host-release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/gl-host-release

args=(
    --web-listen "127.0.0.1:$web_port"
    --slots "$slots"
    --log-dir logs
)
if [[ -n "$openspace" ]]; then
    if ((${#host_args[@]})); then
        echo "run: host options (${host_args[*]}) are the test host's; OpenSpace takes its own" >&2
        exit 2
    fi
    # OpenSpace on a software GL needs a while to its first frame.
    args+=(--openspace "$openspace" --startup-timeout 180)
else
    args+=(--instance-executable build/gl-host-release/osw-gl-host)
    for arg in "${host_args[@]}"; do
        args+=("--instance-arg=$arg")
    done
fi

echo
echo "run: open http://127.0.0.1:$web_port/"
echo "run: sessions and instances are kept in data/orchestrator.db, instance logs in logs/"
echo "run: Ctrl-C stops the orchestrator and every instance"
exec target/debug/orchestrator "${args[@]}" "${more[@]}"
