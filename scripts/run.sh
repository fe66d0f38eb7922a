#!/usr/bin/env bash
# The main job (the README's run command): installs what is missing, builds the GL test
# host (release), starts it streaming, serves the viewer page and prints the URL to open.
#
#   scripts/run.sh [--width W] [--height H] [--fps F] [--capture gl|readback]
#                  [--encoder auto|x264|openh264|vp8|nvh264] [--web-port P]
#
# Without a DISPLAY the host renders under its own Xvfb. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

web_port=8080
host_args=()
while (($#)); do
    case $1 in
        --web-port) web_port=$2; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) host_args+=("$1"); shift ;;
    esac
done

scripts/setup-debian.sh
cmake -S tests/gl-host -B build/gl-host-release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/gl-host-release

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [[ -z ${DISPLAY:-} ]]; then
    display=:77
    Xvfb "$display" -screen 0 3840x2160x24 -nolisten tcp >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do [[ -e /tmp/.X11-unix/X${display#:} ]] && break; sleep 0.1; done
    export DISPLAY=$display
    echo "run: no DISPLAY, rendering under Xvfb $display"
fi

python3 -m http.server "$web_port" --bind 127.0.0.1 --directory web >/dev/null 2>&1 &
pids+=($!)

build/gl-host-release/osw-gl-host --port 4700 "${host_args[@]}" &
pids+=($!)
echo
echo "run: open http://127.0.0.1:$web_port/viewer.html?signal=ws://127.0.0.1:4700/"
echo "run: Ctrl-C stops the host and the web server"
wait "${pids[-1]}"
