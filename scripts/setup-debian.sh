#!/usr/bin/env bash
# Installs what OpenSpace WebRTC needs on Debian 12: GStreamer 1.22 and its plugins, GL
# through Mesa, GLFW, Xvfb, CMake, Chromium, PostgreSQL and coturn for the tests, and the npm
# packages of the browser tests.
# Idempotent and quick when everything is there: only missing packages are installed.
#
# Never installs libc++-19-dev: it removes libunwind-dev and breaks `pkg-config gstreamer-1.0`.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
    # Sound: PulseAudio for the supervisor's per-instance servers (--audio pulse) and the
    # sound tests, libpulse-simple's headers for the GL test host's --tone-out pulse. The
    # package starts no system service (its user units belong to desktop sessions, left as
    # they are); every server the tests or the supervisor need is started and ended by them.
    pulseaudio libpulse-dev
    # GStreamer: headers for the Rust bindings, and the elements the pipeline uses
    # (webrtcbin in -bad, libnice for its ICE, x264 in -ugly, vp8 in -good, GL in -gl).
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly gstreamer1.0-nice gstreamer1.0-gl gstreamer1.0-tools gstreamer1.0-x
    # GL for the test host: GLFW, Mesa's software GL and a headless X server.
    libglfw3-dev libgl-dev libegl-dev libgles-dev libegl-mesa0 libgl1-mesa-dri xvfb xauth
    # PostgreSQL's server: the orchestrator's database tests run on a private cluster of it
    # (scripts/with-postgres.sh) besides SQLite.
    postgresql
    # Builds and tests.
    cmake ninja-build pkg-config build-essential iproute2 util-linux chromium iptables
    # TURN for the multi-host browser test: it runs coturn's `turnserver` itself, inside a
    # network namespace (tests/e2e/lib/fleet.js); the package's system service stays off.
    coturn
)
# Node.js may come from elsewhere (a newer one than Debian's); only install Debian's when
# there is none, or apt would fight the one present.
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    as_root=()
    [[ $(id -u) -eq 0 ]] || as_root=(sudo)
    "${as_root[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
    # Under systemd the package enables and starts coturn at once, a TURN server on every
    # address of this machine. Nothing here wants one: stop it and keep it off. (Under
    # sysvinit its script starts nothing unless /etc/default/coturn says TURNSERVER_ENABLED=1.)
    if [[ " ${missing[*]} " == *" coturn "* && -d /run/systemd/system ]]; then
        echo "setup: stopping and disabling the coturn system service (tests run their own)"
        "${as_root[@]}" systemctl disable --now coturn.service
    fi
fi

if ! command -v cargo >/dev/null; then
    echo "setup: cargo is missing; install Rust 1.95 or newer (rustup) and run again" >&2
    exit 1
fi

# The browser tests' npm packages (playwright-core drives Debian's Chromium; it never
# downloads a browser). Reinstalled only when the lock file changed.
for dir in tests/e2e; do
    stamp="$dir/node_modules/.package-lock.json"
    if [[ ! -f $stamp || $dir/package-lock.json -nt $stamp ]]; then
        echo "setup: npm ci in $dir"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
done
echo "setup: ready"
