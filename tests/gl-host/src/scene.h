/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___SCENE___H__
#define __OSW_GL_HOST___SCENE___H__

#include "camera.h"

#include <GL/glcorearb.h>
#include <string>

namespace glhost {

// The animated stand-in for OpenSpace's rendering: a lit cube spinning at the origin, a
// ring of coloured cubes orbiting and bobbing around it, and a ground grid with coloured
// axes. Everything moves every frame (so frozen video is obvious) and the grid makes any
// camera change obvious too.
class Scene {
public:
    // Needs the context current and the GL functions loaded. On failure returns false
    // with the shader compiler's or linker's log in `error`.
    bool initialize(std::string& error);
    void deinitialize();

    // Draws into the currently bound draw framebuffer, `width` x `height` pixels. `time`
    // is in seconds and only drives the animation.
    void render(const Camera& camera, int width, int height, double time) const;

private:
    GLuint _program = 0;
    GLint _modelLocation = -1;
    GLint _viewProjectionLocation = -1;
    GLint _tintLocation = -1;
    GLint _litLocation = -1;

    GLuint _cubeVao = 0;
    GLuint _cubeVertexBuffer = 0;
    GLuint _cubeIndexBuffer = 0;
    GLsizei _cubeIndexCount = 0;

    GLuint _gridVao = 0;
    GLuint _gridVertexBuffer = 0;
    GLsizei _gridVertexCount = 0;
};

} // namespace glhost

#endif // __OSW_GL_HOST___SCENE___H__
