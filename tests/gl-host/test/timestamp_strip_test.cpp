/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

// The strip's bit layout, and that decode reads back what the GL renderer draws: the
// image here is painted with the same block arithmetic drawTimestampStrip uses.

#include "check.h"
#include "timestamp_strip.h"

#include <algorithm>
#include <vector>

using namespace glhost;

namespace {

// An RGBA image, top row first, with the strip for `word` painted like the renderer does
// and the rest filled with `background`.
std::vector<uint8_t> paint(uint64_t word, int width, int height, uint8_t background) {
    std::vector<uint8_t> image(static_cast<size_t>(width) * height * 4, background);
    for (int y = 0; y < strip::Rows; ++y) {
        for (int i = 0; i < strip::Bits; ++i) {
            const uint8_t value = strip::blockIsWhite(word, i) ? 255 : 0;
            for (int x = strip::blockBegin(i, width); x < strip::blockBegin(i + 1, width);
                 ++x)
            {
                uint8_t* pixel = &image[(static_cast<size_t>(y) * width + x) * 4];
                pixel[0] = pixel[1] = pixel[2] = value;
                pixel[3] = 255;
            }
        }
    }
    return image;
}

} // namespace

int main() {
    // Layout: 48 bits of milliseconds, then 16 bits of frame counter, MSB first.
    static_assert(strip::encode({ 0, 1 }) == 1);
    static_assert(strip::encode({ 1, 0 }) == 0x10000);
    static_assert(strip::encode({ 0xFFFF'FFFF'FFFFull, 0xFFFF }) == ~uint64_t(0));
    // Time beyond 48 bits is cut, not carried into the counter.
    static_assert(strip::encode({ 0x1'0000'0000'0000ull, 7 }) == 7);
    static_assert(strip::blockIsWhite(uint64_t(1) << 63, 0));
    static_assert(!strip::blockIsWhite(uint64_t(1) << 63, 1));
    static_assert(strip::blockIsWhite(1, 63));

    // Blocks tile the width exactly, with floor(i*W/64) boundaries.
    static_assert(strip::blockBegin(0, 1280) == 0);
    static_assert(strip::blockBegin(1, 1280) == 20);
    static_assert(strip::blockBegin(64, 1280) == 1280);
    static_assert(strip::blockBegin(1, 1000) == 15);  // 15.625
    static_assert(strip::blockBegin(3, 1000) == 46);  // 46.875
    static_assert(strip::blockBegin(64, 7680) == 7680);

    const strip::Stamp stamps[] = {
        { 0, 0 },
        { 1'767'225'600'123ull, 42 },      // 2026-01-01T00:00:00.123Z
        { 0xFFFF'FFFF'FFFFull, 0xFFFF },
        { 0xAAAA'AAAA'AAAAull, 0x5555 },
    };
    for (const strip::Stamp& stamp : stamps) {
        CHECK(strip::decodeWord(strip::encode(stamp)) == stamp);
    }

    // Round trip through pixels at sizes whose blocks are not all the same width,
    // including the smallest (1-pixel blocks) and a bottom-up buffer.
    for (int width : { 64, 100, 1000, 1280, 1917, 3840 }) {
        for (const strip::Stamp& stamp : stamps) {
            const int height = 40;
            const std::vector<uint8_t> image =
                paint(strip::encode(stamp), width, height, 90);
            const std::ptrdiff_t stride = static_cast<std::ptrdiff_t>(width) * 4;
            const auto decoded = strip::decode(image.data(), stride, width, height, 4);
            CHECK(decoded.has_value());
            CHECK(decoded && *decoded == stamp);

            // The same image stored bottom-up, as glReadPixels returns it.
            std::vector<uint8_t> flipped(image.size());
            for (int y = 0; y < height; ++y) {
                std::copy_n(&image[y * stride], stride,
                    &flipped[(height - 1 - y) * stride]);
            }
            const auto fromBottomUp = strip::decode(
                flipped.data() + (height - 1) * stride, -stride, width, height, 4);
            CHECK(fromBottomUp && *fromBottomUp == stamp);
        }
    }

    // Mild codec noise near block edges does not flip bits: the edges are ignored.
    {
        const strip::Stamp stamp = { 1'767'225'600'123ull, 42 };
        const int width = 1280;
        std::vector<uint8_t> image = paint(strip::encode(stamp), width, 16, 0);
        for (int y = 0; y < strip::Rows; ++y) {
            for (int i = 1; i < strip::Bits; ++i) {
                const int edge = strip::blockBegin(i, width);
                uint8_t* pixel = &image[(static_cast<size_t>(y) * width + edge) * 4];
                pixel[0] = pixel[1] = pixel[2] = 128;
            }
        }
        const auto decoded = strip::decode(image.data(), width * 4, width, 16, 4);
        CHECK(decoded && *decoded == stamp);
    }

    // A frame without a strip (mid grey) is not read as some stamp; too small a frame
    // gives nothing.
    {
        const std::vector<uint8_t> grey(static_cast<size_t>(1280) * 16 * 4, 128);
        CHECK(!strip::decode(grey.data(), 1280 * 4, 1280, 16, 4).has_value());
        CHECK(!strip::decode(grey.data(), 63 * 4, 63, 16, 4).has_value());
        CHECK(!strip::decode(grey.data(), 1280 * 4, 1280, 15, 4).has_value());
        CHECK(!strip::decode(nullptr, 0, 1280, 16, 4).has_value());
    }

    // Greyscale and RGB input.
    {
        const strip::Stamp stamp = { 123'456'789, 9 };
        const std::vector<uint8_t> rgba = paint(strip::encode(stamp), 256, 16, 0);
        std::vector<uint8_t> grey(256 * 16);
        std::vector<uint8_t> rgb(256 * 16 * 3);
        for (size_t p = 0; p < grey.size(); ++p) {
            grey[p] = rgba[p * 4];
            rgb[p * 3] = rgb[p * 3 + 1] = rgb[p * 3 + 2] = rgba[p * 4];
        }
        CHECK(strip::decode(grey.data(), 256, 256, 16, 1) == stamp);
        CHECK(strip::decode(rgb.data(), 256 * 3, 256, 16, 3) == stamp);
    }

    return CHECK_RESULT();
}
