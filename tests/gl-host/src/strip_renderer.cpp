/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "strip_renderer.h"

#include "gl_functions.h"

#include <vector>

namespace glhost {

void drawTimestampStrip(uint64_t word, int width, int height) {
    // GL's origin is bottom-left: the viewer's top 16 rows are GL rows
    // height-16..height-1.
    const int y = height - strip::Rows;
    glEnable(GL_SCISSOR_TEST);
    glScissor(0, y, width, strip::Rows);
    glClearColor(0.f, 0.f, 0.f, 1.f);
    glClear(GL_COLOR_BUFFER_BIT);
    glClearColor(1.f, 1.f, 1.f, 1.f);
    for (int i = 0; i < strip::Bits; ++i) {
        if (!strip::blockIsWhite(word, i)) {
            continue;
        }
        const int begin = strip::blockBegin(i, width);
        const int end = strip::blockBegin(i + 1, width);
        glScissor(begin, y, end - begin, strip::Rows);
        glClear(GL_COLOR_BUFFER_BIT);
    }
    glDisable(GL_SCISSOR_TEST);
}

std::optional<strip::Stamp> readTimestampStrip(int width, int height) {
    std::vector<uint8_t> pixels(static_cast<size_t>(width) * strip::Rows * 4);
    glPixelStorei(GL_PACK_ALIGNMENT, 1);
    glReadPixels(0, height - strip::Rows, width, strip::Rows, GL_RGBA, GL_UNSIGNED_BYTE,
        pixels.data());
    // glReadPixels fills bottom-up: the viewer's top row is the last one read.
    const std::ptrdiff_t stride = static_cast<std::ptrdiff_t>(width) * 4;
    const uint8_t* topRow = pixels.data() + (strip::Rows - 1) * stride;
    return strip::decode(topRow, -stride, width, strip::Rows, 4);
}

} // namespace glhost
