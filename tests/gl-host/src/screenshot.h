/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___SCREENSHOT___H__
#define __OSW_GL_HOST___SCREENSHOT___H__

#include <string>

namespace glhost {

// Writes the bound read framebuffer as a binary PPM (P6), top row first, so a run under
// Xvfb can be looked at without a screen grabber. Returns false if the file cannot be
// written.
bool writeScreenshot(const std::string& path, int width, int height);

} // namespace glhost

#endif // __OSW_GL_HOST___SCREENSHOT___H__
