/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "scene.h"

#include "gl_functions.h"
#include "math3d.h"

#include <cmath>
#include <cstddef>
#include <vector>

namespace glhost {

namespace {

constexpr const char* VertexShader = R"(#version 330 core
layout(location = 0) in vec3 inPosition;
layout(location = 1) in vec3 inNormal;
layout(location = 2) in vec3 inColor;
uniform mat4 model;
uniform mat4 viewProjection;
out vec3 vsNormal;
out vec3 vsColor;
void main() {
    vsNormal = mat3(model) * inNormal;
    vsColor = inColor;
    gl_Position = viewProjection * model * vec4(inPosition, 1.0);
}
)";

constexpr const char* FragmentShader = R"(#version 330 core
in vec3 vsNormal;
in vec3 vsColor;
uniform vec3 tint;
uniform float lit;
out vec4 outColor;
void main() {
    vec3 color = vsColor * tint;
    if (lit > 0.5) {
        vec3 light = normalize(vec3(0.4, 1.0, 0.6));
        float diffuse = max(dot(normalize(vsNormal), light), 0.0);
        color *= 0.25 + 0.75 * diffuse;
    }
    outColor = vec4(color, 1.0);
}
)";

// Position, normal, colour: the layout both meshes share.
struct Vertex {
    float position[3];
    float normal[3];
    float color[3];
};

// A unit cube (-0.5..0.5) with one colour and normal per face, so lighting shows its
// rotation clearly.
void makeCube(std::vector<Vertex>& vertices, std::vector<GLuint>& indices) {
    // Each face: its normal, the two in-face axes (u x v = normal) and its colour.
    struct Face {
        Vec3 normal;
        Vec3 u;
        Vec3 v;
        Vec3 color;
    };
    const Face faces[] = {
        { { 1, 0, 0 }, { 0, 0, -1 }, { 0, 1, 0 }, { 0.9f, 0.3f, 0.3f } },
        { { -1, 0, 0 }, { 0, 0, 1 }, { 0, 1, 0 }, { 0.3f, 0.9f, 0.9f } },
        { { 0, 1, 0 }, { 1, 0, 0 }, { 0, 0, -1 }, { 0.3f, 0.9f, 0.3f } },
        { { 0, -1, 0 }, { 1, 0, 0 }, { 0, 0, 1 }, { 0.9f, 0.3f, 0.9f } },
        { { 0, 0, 1 }, { 1, 0, 0 }, { 0, 1, 0 }, { 0.3f, 0.4f, 0.95f } },
        { { 0, 0, -1 }, { -1, 0, 0 }, { 0, 1, 0 }, { 0.95f, 0.85f, 0.3f } },
    };
    for (const Face& f : faces) {
        const GLuint base = static_cast<GLuint>(vertices.size());
        const float corners[4][2] = {
            { -1.f, -1.f }, { 1.f, -1.f }, { 1.f, 1.f }, { -1.f, 1.f }
        };
        for (const auto& c : corners) {
            Vertex vertex = {
                {
                    0.5f * (f.normal.x + c[0] * f.u.x + c[1] * f.v.x),
                    0.5f * (f.normal.y + c[0] * f.u.y + c[1] * f.v.y),
                    0.5f * (f.normal.z + c[0] * f.u.z + c[1] * f.v.z)
                },
                { f.normal.x, f.normal.y, f.normal.z },
                { f.color.x, f.color.y, f.color.z }
            };
            vertices.push_back(vertex);
        }
        for (GLuint i : { 0u, 1u, 2u, 0u, 2u, 3u }) {
            indices.push_back(base + i);
        }
    }
}

// Grid lines on the ground plane; the x axis red and the z axis blue.
std::vector<Vertex> makeGrid() {
    constexpr int HalfExtent = 12;
    constexpr float Ground = -2.f;
    std::vector<Vertex> vertices;
    for (int i = -HalfExtent; i <= HalfExtent; ++i) {
        const float p = static_cast<float>(i);
        const float e = static_cast<float>(HalfExtent);
        const Vec3 grey = { 0.35f, 0.38f, 0.42f };
        const Vec3 xColor = i == 0 ? Vec3{ 0.95f, 0.25f, 0.2f } : grey;
        const Vec3 zColor = i == 0 ? Vec3{ 0.25f, 0.45f, 1.f } : grey;
        auto add = [&](float x, float z, Vec3 c) {
            const Vertex vertex = {
                { x, Ground, z }, { 0.f, 1.f, 0.f }, { c.x, c.y, c.z }
            };
            vertices.push_back(vertex);
        };
        add(-e, p, xColor);
        add(e, p, xColor);
        add(p, -e, zColor);
        add(p, e, zColor);
    }
    return vertices;
}

void setVertexLayout() {
    const GLsizei stride = sizeof(Vertex);
    glVertexAttribPointer(0, 3, GL_FLOAT, GL_FALSE, stride,
        reinterpret_cast<const void*>(offsetof(Vertex, position)));
    glVertexAttribPointer(1, 3, GL_FLOAT, GL_FALSE, stride,
        reinterpret_cast<const void*>(offsetof(Vertex, normal)));
    glVertexAttribPointer(2, 3, GL_FLOAT, GL_FALSE, stride,
        reinterpret_cast<const void*>(offsetof(Vertex, color)));
    glEnableVertexAttribArray(0);
    glEnableVertexAttribArray(1);
    glEnableVertexAttribArray(2);
}

GLuint compileShader(GLenum type, const char* source, std::string& error) {
    const GLuint shader = glCreateShader(type);
    glShaderSource(shader, 1, &source, nullptr);
    glCompileShader(shader);
    GLint ok = GL_FALSE;
    glGetShaderiv(shader, GL_COMPILE_STATUS, &ok);
    if (ok != GL_TRUE) {
        char log[2048] = {};
        glGetShaderInfoLog(shader, sizeof(log), nullptr, log);
        error = std::string("shader compilation failed: ") + log;
        glDeleteShader(shader);
        return 0;
    }
    return shader;
}

// A bright, fully saturated colour around the hue circle (h in [0, 1)).
Vec3 hue(float h) {
    const float r = std::fabs(h * 6.f - 3.f) - 1.f;
    const float g = 2.f - std::fabs(h * 6.f - 2.f);
    const float b = 2.f - std::fabs(h * 6.f - 4.f);
    auto clamp01 = [](float v) { return v < 0.f ? 0.f : (v > 1.f ? 1.f : v); };
    return { clamp01(r), clamp01(g), clamp01(b) };
}

} // namespace

bool Scene::initialize(std::string& error) {
    const GLuint vs = compileShader(GL_VERTEX_SHADER, VertexShader, error);
    if (vs == 0) {
        return false;
    }
    const GLuint fs = compileShader(GL_FRAGMENT_SHADER, FragmentShader, error);
    if (fs == 0) {
        glDeleteShader(vs);
        return false;
    }
    _program = glCreateProgram();
    glAttachShader(_program, vs);
    glAttachShader(_program, fs);
    glLinkProgram(_program);
    glDeleteShader(vs);
    glDeleteShader(fs);
    GLint ok = GL_FALSE;
    glGetProgramiv(_program, GL_LINK_STATUS, &ok);
    if (ok != GL_TRUE) {
        char log[2048] = {};
        glGetProgramInfoLog(_program, sizeof(log), nullptr, log);
        error = std::string("shader linking failed: ") + log;
        return false;
    }
    _modelLocation = glGetUniformLocation(_program, "model");
    _viewProjectionLocation = glGetUniformLocation(_program, "viewProjection");
    _tintLocation = glGetUniformLocation(_program, "tint");
    _litLocation = glGetUniformLocation(_program, "lit");

    std::vector<Vertex> cubeVertices;
    std::vector<GLuint> cubeIndices;
    makeCube(cubeVertices, cubeIndices);
    _cubeIndexCount = static_cast<GLsizei>(cubeIndices.size());
    glGenVertexArrays(1, &_cubeVao);
    glBindVertexArray(_cubeVao);
    glGenBuffers(1, &_cubeVertexBuffer);
    glBindBuffer(GL_ARRAY_BUFFER, _cubeVertexBuffer);
    glBufferData(GL_ARRAY_BUFFER, cubeVertices.size() * sizeof(Vertex),
        cubeVertices.data(), GL_STATIC_DRAW);
    glGenBuffers(1, &_cubeIndexBuffer);
    glBindBuffer(GL_ELEMENT_ARRAY_BUFFER, _cubeIndexBuffer);
    glBufferData(GL_ELEMENT_ARRAY_BUFFER, cubeIndices.size() * sizeof(GLuint),
        cubeIndices.data(), GL_STATIC_DRAW);
    setVertexLayout();

    const std::vector<Vertex> grid = makeGrid();
    _gridVertexCount = static_cast<GLsizei>(grid.size());
    glGenVertexArrays(1, &_gridVao);
    glBindVertexArray(_gridVao);
    glGenBuffers(1, &_gridVertexBuffer);
    glBindBuffer(GL_ARRAY_BUFFER, _gridVertexBuffer);
    glBufferData(GL_ARRAY_BUFFER, grid.size() * sizeof(Vertex), grid.data(),
        GL_STATIC_DRAW);
    setVertexLayout();

    glBindVertexArray(0);
    glBindBuffer(GL_ARRAY_BUFFER, 0);
    if (const GLenum glError = glGetError(); glError != GL_NO_ERROR) {
        error = "GL error " + std::to_string(glError) + " while creating the scene";
        return false;
    }
    return true;
}

void Scene::deinitialize() {
    glDeleteBuffers(1, &_gridVertexBuffer);
    glDeleteVertexArrays(1, &_gridVao);
    glDeleteBuffers(1, &_cubeIndexBuffer);
    glDeleteBuffers(1, &_cubeVertexBuffer);
    glDeleteVertexArrays(1, &_cubeVao);
    glDeleteProgram(_program);
    *this = Scene();
}

void Scene::render(const Camera& camera, int width, int height, double time) const {
    glViewport(0, 0, width, height);
    glDisable(GL_SCISSOR_TEST);
    glEnable(GL_DEPTH_TEST);
    glClearColor(0.04f, 0.06f, 0.11f, 1.f);
    glClear(GL_COLOR_BUFFER_BIT | GL_DEPTH_BUFFER_BIT);

    const float aspect = static_cast<float>(width) / static_cast<float>(height);
    const Mat4 viewProjection = perspective(radians(50.f), aspect, 0.1f, 200.f) *
                                camera.view();
    glUseProgram(_program);
    glUniformMatrix4fv(_viewProjectionLocation, 1, GL_FALSE, viewProjection.data());

    const Mat4 none = identity();
    glUniformMatrix4fv(_modelLocation, 1, GL_FALSE, none.data());
    glUniform3f(_tintLocation, 1.f, 1.f, 1.f);
    glUniform1f(_litLocation, 0.f);
    glBindVertexArray(_gridVao);
    glDrawArrays(GL_LINES, 0, _gridVertexCount);

    glUniform1f(_litLocation, 1.f);
    glBindVertexArray(_cubeVao);
    const float t = static_cast<float>(time);
    const Mat4 center = rotation(0.9f * t, Vec3{ 0.3f, 1.f, 0.2f }) * scaling(2.f);
    glUniformMatrix4fv(_modelLocation, 1, GL_FALSE, center.data());
    glDrawElements(GL_TRIANGLES, _cubeIndexCount, GL_UNSIGNED_INT, nullptr);

    constexpr int RingCount = 12;
    constexpr float RingRadius = 5.f;
    for (int i = 0; i < RingCount; ++i) {
        const float phase = 2.f * Pi * static_cast<float>(i) / RingCount;
        const float angle = 0.5f * t + phase;
        const Vec3 position = {
            RingRadius * std::cos(angle),
            0.8f * std::sin(2.f * t + phase),
            RingRadius * std::sin(angle)
        };
        const Mat4 model = translation(position) *
                           rotation(2.f * t + phase, Vec3{ 1.f, 0.5f, 0.f }) *
                           scaling(0.7f);
        const Vec3 color = hue(static_cast<float>(i) / RingCount);
        glUniformMatrix4fv(_modelLocation, 1, GL_FALSE, model.data());
        // Boosted so the tinted faces stay bright despite the per-face base colour.
        glUniform3f(_tintLocation, 0.4f + color.x, 0.4f + color.y, 0.4f + color.z);
        glDrawElements(GL_TRIANGLES, _cubeIndexCount, GL_UNSIGNED_INT, nullptr);
    }
    glBindVertexArray(0);
    glUseProgram(0);
    glDisable(GL_DEPTH_TEST);
}

} // namespace glhost
