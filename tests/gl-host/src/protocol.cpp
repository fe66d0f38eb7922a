/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "protocol.h"

#include "api_protocol.h"

#include <cmath>
#include <cstdio>

namespace glhost::protocol {

namespace {

template <typename... Args>
void line(const char* format, Args... args) {
    // One lock around the three calls, so a line written by the JSON API stand-in's
    // thread never lands inside another.
    flockfile(stdout);
    std::printf(format, args...);
    std::fputc('\n', stdout);
    std::fflush(stdout);
    funlockfile(stdout);
}

} // namespace

void ready(uint16_t port) {
    line("READY port=%u", static_cast<unsigned>(port));
}

void camera(float yaw, float pitch, float distance) {
    line("CAMERA yaw=%.2f pitch=%.2f distance=%.3f", yaw, pitch, distance);
}

void resize(int width, int height) {
    line("RESIZE %dx%d", width, height);
}

void viewerJoined(uint32_t viewerId) {
    line("VIEWER joined %u", static_cast<unsigned>(viewerId));
}

void viewerLeft(uint32_t viewerId) {
    line("VIEWER left %u", static_cast<unsigned>(viewerId));
}

void stats(const std::string& json) {
    line("STATS %s", json.c_str());
}

void frameCost(const FrameCost& cost) {
    line("FRAMECOST median_us=%.0f p95_us=%.0f samples=%zu", std::round(cost.medianUs),
        std::round(cost.p95Us), cost.samples);
}

void stripCheck(bool ok, long long frames, long long failures) {
    line("STRIPCHECK %s frames=%lld failures=%lld", ok ? "ok" : "failed", frames,
        failures);
}

void apiListening(uint16_t port) {
    line("API port=%u", static_cast<unsigned>(port));
}

void apiRan(const std::string& script) {
    line("api: ran %s", api::oneLine(script).c_str());
}

void appScript(uint32_t viewerId, const std::string& script) {
    line("APP script viewer=%u %s", static_cast<unsigned>(viewerId),
        api::oneLine(script).c_str());
}

void appView(uint32_t viewerId, const std::string& name) {
    line("APP view viewer=%u %s", static_cast<unsigned>(viewerId),
        api::oneLine(name).c_str());
}

void controls(uint32_t viewerId) {
    line("CONTROLS %u", static_cast<unsigned>(viewerId));
}

void tone(long long frame, uint64_t unixMs) {
    line("TONE frame=%lld unix_ms=%llu", frame, static_cast<unsigned long long>(unixMs));
}

} // namespace glhost::protocol
