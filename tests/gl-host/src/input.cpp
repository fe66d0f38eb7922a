/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "input.h"

#include "protocol.h"

#include <algorithm>

namespace glhost {

namespace {

// rust-core refuses sizes outside 1..7680; the strip needs at least 64 columns.
constexpr int MinSize = 64;
constexpr int MaxSize = 7680;

// Scales a coordinate from the viewer's displayed size to the framebuffer. A zero size
// means the sender did not say; then the coordinate is taken as framebuffer pixels.
double toFramebuffer(double value, uint32_t displayed, int framebuffer) {
    if (displayed == 0) {
        return value;
    }
    return value * framebuffer / static_cast<double>(displayed);
}

} // namespace

void applyEvent(const osw_event& event, int fbWidth, int fbHeight, Camera& camera,
                InputOutcome& outcome)
{
    const double x = toFramebuffer(event.x, event.width, fbWidth);
    const double y = toFramebuffer(event.y, event.height, fbHeight);
    switch (event.kind) {
        case OSW_EVENT_KIND_POINTER_MOVE:
            outcome.cameraChanged |= camera.pointerMove(x, y);
            break;
        case OSW_EVENT_KIND_POINTER_BUTTON:
            outcome.cameraChanged |=
                camera.pointerButton(event.button, event.action, x, y);
            break;
        case OSW_EVENT_KIND_WHEEL:
            // Wheel deltas are GLFW scroll units, not positions: no scaling.
            outcome.cameraChanged |= camera.wheel(event.y);
            break;
        case OSW_EVENT_KIND_KEY:
            outcome.cameraChanged |= camera.key(event.key, event.action);
            break;
        case OSW_EVENT_KIND_RESIZE:
            outcome.requestedWidth =
                std::clamp(static_cast<int>(std::min<uint32_t>(event.width, MaxSize)),
                           MinSize, MaxSize);
            outcome.requestedHeight =
                std::clamp(static_cast<int>(std::min<uint32_t>(event.height, MaxSize)),
                           MinSize, MaxSize);
            break;
        case OSW_EVENT_KIND_VIEWER_JOINED:
            protocol::viewerJoined(event.viewer_id);
            break;
        case OSW_EVENT_KIND_VIEWER_LEFT:
            protocol::viewerLeft(event.viewer_id);
            break;
        case OSW_EVENT_KIND_CONTROLS_CHANGED:
            protocol::controls(event.viewer_id);
            break;
        case OSW_EVENT_KIND_TEXT:
            // The scene has no text entry; OpenSpace would pass it to charCallback.
        case OSW_EVENT_KIND_NONE:
        default:
            break;
    }
}

} // namespace glhost
