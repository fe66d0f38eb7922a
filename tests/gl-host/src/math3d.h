/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___MATH3D___H__
#define __OSW_GL_HOST___MATH3D___H__

// The few vector and matrix operations the scene needs. OpenSpace uses glm; the test host
// carries these forty lines instead so it builds from GLFW and the C ABI alone.

#include <array>
#include <cmath>

namespace glhost {

constexpr float Pi = 3.14159265358979f;

inline float radians(float degrees) {
    return degrees * Pi / 180.f;
}

struct Vec3 {
    float x = 0.f;
    float y = 0.f;
    float z = 0.f;
};

inline Vec3 operator-(Vec3 a, Vec3 b) { return { a.x - b.x, a.y - b.y, a.z - b.z }; }

inline float dot(Vec3 a, Vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }

inline Vec3 cross(Vec3 a, Vec3 b) {
    return { a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x };
}

inline Vec3 normalize(Vec3 v) {
    const float length = std::sqrt(dot(v, v));
    return { v.x / length, v.y / length, v.z / length };
}

// Column-major like GL: element (row r, column c) is m[c * 4 + r].
using Mat4 = std::array<float, 16>;

inline Mat4 identity() {
    return {
        1.f, 0.f, 0.f, 0.f,
        0.f, 1.f, 0.f, 0.f,
        0.f, 0.f, 1.f, 0.f,
        0.f, 0.f, 0.f, 1.f
    };
}

inline Mat4 operator*(const Mat4& a, const Mat4& b) {
    Mat4 result{};
    for (int c = 0; c < 4; ++c) {
        for (int r = 0; r < 4; ++r) {
            float sum = 0.f;
            for (int k = 0; k < 4; ++k) {
                sum += a[k * 4 + r] * b[c * 4 + k];
            }
            result[c * 4 + r] = sum;
        }
    }
    return result;
}

inline Mat4 translation(Vec3 t) {
    Mat4 m = identity();
    m[12] = t.x;
    m[13] = t.y;
    m[14] = t.z;
    return m;
}

inline Mat4 scaling(float s) {
    Mat4 m = identity();
    m[0] = s;
    m[5] = s;
    m[10] = s;
    return m;
}

// Rotation by `angle` radians about the unit vector `axis` (Rodrigues).
inline Mat4 rotation(float angle, Vec3 axis) {
    const Vec3 a = normalize(axis);
    const float c = std::cos(angle);
    const float s = std::sin(angle);
    const float t = 1.f - c;
    return {
        t * a.x * a.x + c,       t * a.x * a.y + s * a.z, t * a.x * a.z - s * a.y, 0.f,
        t * a.x * a.y - s * a.z, t * a.y * a.y + c,       t * a.y * a.z + s * a.x, 0.f,
        t * a.x * a.z + s * a.y, t * a.y * a.z - s * a.x, t * a.z * a.z + c,       0.f,
        0.f,                     0.f,                     0.f,                     1.f
    };
}

inline Mat4 perspective(float fovY, float aspect, float near, float far) {
    const float f = 1.f / std::tan(fovY / 2.f);
    Mat4 m{};
    m[0] = f / aspect;
    m[5] = f;
    m[10] = (far + near) / (near - far);
    m[11] = -1.f;
    m[14] = 2.f * far * near / (near - far);
    return m;
}

inline Mat4 lookAt(Vec3 eye, Vec3 target, Vec3 up) {
    const Vec3 f = normalize(target - eye);
    const Vec3 s = normalize(cross(f, up));
    const Vec3 u = cross(s, f);
    return {
        s.x,          u.x,          -f.x,        0.f,
        s.y,          u.y,          -f.y,        0.f,
        s.z,          u.z,          -f.z,        0.f,
        -dot(s, eye), -dot(u, eye), dot(f, eye), 1.f
    };
}

} // namespace glhost

#endif // __OSW_GL_HOST___MATH3D___H__
