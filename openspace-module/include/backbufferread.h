/*****************************************************************************************
 *                                                                                       *
 * OpenSpace                                                                             *
 *                                                                                       *
 * Copyright (c) 2014-2026                                                               *
 *                                                                                       *
 * Permission is hereby granted, free of charge, to any person obtaining a copy of this  *
 * software and associated documentation files (the "Software"), to deal in the Software *
 * without restriction, including without limitation the rights to use, copy, modify,    *
 * merge, publish, distribute, sublicense, and/or sell copies of the Software, and to    *
 * permit persons to whom the Software is furnished to do so, subject to the following   *
 * conditions:                                                                           *
 *                                                                                       *
 * The above copyright notice and this permission notice shall be included in all copies *
 * or substantial portions of the Software.                                              *
 *                                                                                       *
 * THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,   *
 * INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A         *
 * PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT    *
 * HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF  *
 * CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE  *
 * OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.                                         *
 ****************************************************************************************/

#ifndef __OPENSPACE_MODULE_WEBRTC___BACKBUFFERREAD___H__
#define __OPENSPACE_MODULE_WEBRTC___BACKBUFFERREAD___H__

namespace openspace {

/**
 * While it lives, the default framebuffer of the current GL context is bound as
 * `GL_READ_FRAMEBUFFER` with its back buffer as the read buffer, which is where rust-core
 * reads a submitted frame from. The previous read framebuffer and the default
 * framebuffer's previous read buffer are restored when it goes out of scope.
 *
 * The GL calls live in their own translation unit, apart from rust-core's C header, so
 * that no GL name that header may declare can meet glbinding's.
 */
class BackBufferRead {
public:
    BackBufferRead();
    ~BackBufferRead();

    BackBufferRead(const BackBufferRead&) = delete;
    BackBufferRead& operator=(const BackBufferRead&) = delete;

private:
    int _previousFramebuffer = 0;
    int _previousReadBuffer = 0;
};

} // namespace openspace

#endif // __OPENSPACE_MODULE_WEBRTC___BACKBUFFERREAD___H__
