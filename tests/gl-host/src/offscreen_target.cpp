/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "offscreen_target.h"

using namespace glhost;

void OffscreenTarget::deinitialize() {
    if (_framebuffer == 0) {
        return;
    }
    const GLuint textures[] = { _texture, _depth };
    glDeleteTextures(2, textures);
    glDeleteFramebuffers(1, &_framebuffer);
    _framebuffer = 0;
    _texture = 0;
    _depth = 0;
    _width = 0;
    _height = 0;
}

bool OffscreenTarget::bindForDrawing(int width, int height) {
    if (_framebuffer == 0) {
        glGenFramebuffers(1, &_framebuffer);
        glGenTextures(1, &_texture);
        glGenTextures(1, &_depth);
    }
    if (width != _width || height != _height) {
        glBindTexture(GL_TEXTURE_2D, _texture);
        glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, width, height, 0, GL_RGBA,
            GL_UNSIGNED_BYTE, nullptr);
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR);
        glBindTexture(GL_TEXTURE_2D, _depth);
        glTexImage2D(GL_TEXTURE_2D, 0, GL_DEPTH_COMPONENT24, width, height, 0,
            GL_DEPTH_COMPONENT, GL_UNSIGNED_INT, nullptr);
        glBindTexture(GL_TEXTURE_2D, 0);
        _width = width;
        _height = height;
    }
    glBindFramebuffer(GL_FRAMEBUFFER, _framebuffer);
    glFramebufferTexture2D(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, _texture, 0);
    glFramebufferTexture2D(GL_FRAMEBUFFER, GL_DEPTH_ATTACHMENT, GL_TEXTURE_2D, _depth, 0);
    return glCheckFramebufferStatus(GL_FRAMEBUFFER) == GL_FRAMEBUFFER_COMPLETE;
}

void OffscreenTarget::copyToWindow() const {
    glBindFramebuffer(GL_READ_FRAMEBUFFER, _framebuffer);
    glBindFramebuffer(GL_DRAW_FRAMEBUFFER, 0);
    glDisable(GL_SCISSOR_TEST);
    glBlitFramebuffer(0, 0, _width, _height, 0, 0, _width, _height, GL_COLOR_BUFFER_BIT,
        GL_NEAREST);
    glBindFramebuffer(GL_FRAMEBUFFER, 0);
}

GLuint OffscreenTarget::texture() const {
    return _texture;
}
