/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "screenshot.h"

#include "gl_functions.h"

#include <cstdint>
#include <cstdio>
#include <vector>

namespace glhost {

bool writeScreenshot(const std::string& path, int width, int height) {
    const size_t rowBytes = static_cast<size_t>(width) * 3;
    std::vector<uint8_t> pixels(rowBytes * height);
    glPixelStorei(GL_PACK_ALIGNMENT, 1);
    glReadPixels(0, 0, width, height, GL_RGB, GL_UNSIGNED_BYTE, pixels.data());

    std::FILE* file = std::fopen(path.c_str(), "wb");
    if (file == nullptr) {
        return false;
    }
    std::fprintf(file, "P6\n%d %d\n255\n", width, height);
    bool ok = true;
    // GL rows are bottom-up; PPM wants the top row first.
    for (int row = height - 1; row >= 0 && ok; --row) {
        ok = std::fwrite(pixels.data() + row * rowBytes, 1, rowBytes, file) == rowBytes;
    }
    return std::fclose(file) == 0 && ok;
}

} // namespace glhost
