/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___OFFSCREEN_TARGET___H__
#define __OSW_GL_HOST___OFFSCREEN_TARGET___H__

#include "gl_functions.h"

// A colour texture the scene renders into with `--source texture`, so the host can hand
// rust-core a texture (osw_streamer_submit_texture) rather than the window's back buffer,
// the way an engine that renders offscreen would. The picture is then copied to the
// window so it still shows there.
class OffscreenTarget {
public:
    OffscreenTarget() = default;
    OffscreenTarget(const OffscreenTarget&) = delete;
    OffscreenTarget& operator=(const OffscreenTarget&) = delete;

    // Deletes the GL objects; needs the context that made them current (like
    // Scene::deinitialize, it is called before the window goes).
    void deinitialize();

    // Makes the texture `width` x `height` (reallocating on a size change) and binds it
    // as the draw framebuffer. Returns false if the framebuffer is incomplete.
    bool bindForDrawing(int width, int height);

    // Copies the texture into the window's back buffer and binds the window again.
    void copyToWindow() const;

    GLuint texture() const;

private:
    GLuint _framebuffer = 0;
    GLuint _texture = 0;
    // The scene depth-tests, so the target needs depth too.
    GLuint _depth = 0;
    int _width = 0;
    int _height = 0;
};

#endif // __OSW_GL_HOST___OFFSCREEN_TARGET___H__
