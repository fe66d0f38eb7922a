/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___STRIP_RENDERER___H__
#define __OSW_GL_HOST___STRIP_RENDERER___H__

#include "timestamp_strip.h"

#include <optional>

namespace glhost {

// Draws the strip for `word` (see timestamp_strip.h) over the top rows of the bound draw
// framebuffer: black across the strip, then one scissored clear per white block. Clears
// are exact (no filtering, blending or rasterization rules), cheap, and need no shader.
void drawTimestampStrip(uint64_t word, int width, int height);

// Reads the strip back from the bound read framebuffer and decodes it (self-test mode).
std::optional<strip::Stamp> readTimestampStrip(int width, int height);

} // namespace glhost

#endif // __OSW_GL_HOST___STRIP_RENDERER___H__
