/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___CAMERA___H__
#define __OSW_GL_HOST___CAMERA___H__

#include "math3d.h"

namespace glhost {

// An orbit camera around the scene's origin: yaw and pitch in degrees, distance in scene
// units. Its controls mirror what OpenSpace does with the same input (left drag orbits,
// wheel zooms), so an end-to-end test can see that browser input reached the host: every
// change is printed as a CAMERA line.
class Camera {
public:
    // Input in framebuffer pixels, origin top-left. Each returns true when the camera
    // changed.
    bool pointerButton(int button, int action, double x, double y);
    bool pointerMove(double x, double y);
    bool wheel(double dy);
    bool key(int key, int action);
    // Flies straight to a pose (a named view); returns true when the camera changed.
    bool goTo(float yaw, float pitch, float distance);

    float yaw() const { return _yaw; }
    float pitch() const { return _pitch; }
    float distance() const { return _distance; }

    Vec3 eye() const;
    Mat4 view() const;

private:
    bool setYawPitch(float yaw, float pitch);
    bool setDistance(float distance);

    float _yaw = 35.f;
    float _pitch = 25.f;
    float _distance = 11.f;

    bool _dragging = false;
    double _lastX = 0.0;
    double _lastY = 0.0;
};

} // namespace glhost

#endif // __OSW_GL_HOST___CAMERA___H__
