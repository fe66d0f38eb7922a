/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "camera.h"

#include <algorithm>
#include <cmath>

namespace glhost {

namespace {

// GLFW's codes, which the browser side sends as well (see rust-core/SIGNALING.md).
constexpr int MouseButtonLeft = 0;
constexpr int ActionRelease = 0;
constexpr int ActionPress = 1;
constexpr int ActionRepeat = 2;
constexpr int KeyA = 65;
constexpr int KeyD = 68;
constexpr int KeyS = 83;
constexpr int KeyW = 87;
constexpr int KeyRight = 262;
constexpr int KeyLeft = 263;
constexpr int KeyDown = 264;
constexpr int KeyUp = 265;

// Degrees of orbit per framebuffer pixel dragged.
constexpr float DragDegreesPerPixel = 0.3f;
// Each wheel step (and W/S press) moves this fraction of the distance.
constexpr float ZoomStep = 0.1f;
constexpr float KeyDegrees = 5.f;
// Short of the poles, where the orbit's up vector would flip.
constexpr float MaxPitch = 89.f;
constexpr float MinDistance = 2.f;
constexpr float MaxDistance = 60.f;

} // namespace

bool Camera::pointerButton(int button, int action, double x, double y) {
    if (button == MouseButtonLeft) {
        _dragging = action != ActionRelease;
        _lastX = x;
        _lastY = y;
    }
    return false;
}

bool Camera::pointerMove(double x, double y) {
    const double dx = x - _lastX;
    const double dy = y - _lastY;
    _lastX = x;
    _lastY = y;
    if (!_dragging) {
        return false;
    }
    // Dragging right turns the scene right (the camera moves left); dragging down lifts
    // the camera, as in OpenSpace's orbital navigation.
    return setYawPitch(_yaw - static_cast<float>(dx) * DragDegreesPerPixel,
                       _pitch + static_cast<float>(dy) * DragDegreesPerPixel);
}

bool Camera::wheel(double dy) {
    // Scrolling up (+y) zooms in.
    return setDistance(_distance * std::pow(1.f - ZoomStep, static_cast<float>(dy)));
}

bool Camera::key(int key, int action) {
    if (action != ActionPress && action != ActionRepeat) {
        return false;
    }
    switch (key) {
        case KeyW: return setDistance(_distance * (1.f - ZoomStep));
        case KeyS: return setDistance(_distance / (1.f - ZoomStep));
        case KeyA:
        case KeyLeft:
            return setYawPitch(_yaw + KeyDegrees, _pitch);
        case KeyD:
        case KeyRight:
            return setYawPitch(_yaw - KeyDegrees, _pitch);
        case KeyUp: return setYawPitch(_yaw, _pitch + KeyDegrees);
        case KeyDown: return setYawPitch(_yaw, _pitch - KeyDegrees);
        default: return false;
    }
}

Vec3 Camera::eye() const {
    const float yaw = radians(_yaw);
    const float pitch = radians(_pitch);
    return {
        _distance * std::cos(pitch) * std::sin(yaw),
        _distance * std::sin(pitch),
        _distance * std::cos(pitch) * std::cos(yaw)
    };
}

Mat4 Camera::view() const {
    return lookAt(eye(), Vec3{ 0.f, 0.f, 0.f }, Vec3{ 0.f, 1.f, 0.f });
}

bool Camera::setYawPitch(float yaw, float pitch) {
    // Keep yaw in [0, 360) so the printed value stays readable after long drags.
    yaw = std::fmod(yaw, 360.f);
    if (yaw < 0.f) {
        yaw += 360.f;
    }
    pitch = std::clamp(pitch, -MaxPitch, MaxPitch);
    const bool changed = yaw != _yaw || pitch != _pitch;
    _yaw = yaw;
    _pitch = pitch;
    return changed;
}

bool Camera::setDistance(float distance) {
    distance = std::clamp(distance, MinDistance, MaxDistance);
    const bool changed = distance != _distance;
    _distance = distance;
    return changed;
}

bool Camera::goTo(float yaw, float pitch, float distance) {
    const bool turned = setYawPitch(yaw, pitch);
    const bool moved = setDistance(distance);
    return turned || moved;
}

} // namespace glhost
