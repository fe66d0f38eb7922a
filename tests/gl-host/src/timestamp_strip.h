/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___TIMESTAMP_STRIP___H__
#define __OSW_GL_HOST___TIMESTAMP_STRIP___H__

// The timestamp strip: a machine-readable stamp in the top rows of every frame, so a
// viewer (a browser test reading the decoded <video>) can tell which frame it sees and
// when that frame was rendered, with no side channel. Glass-to-glass latency is then the
// viewer's wall clock minus the stamped time (sender and viewer share this machine's
// clock in the tests).
//
// Layout (top as the viewer sees it; in GL's bottom-left origin these are the rows
// height-16 .. height-1):
//   - the top `Rows` (16) pixel rows hold `Bits` (64) blocks side by side;
//   - block i spans the columns floor(i*W/64) .. floor((i+1)*W/64)-1;
//   - a block is black for a 0 bit and white for a 1 bit, most significant bit first;
//   - bits 0-47 (blocks 0-47): the wall-clock time in milliseconds since the Unix epoch,
//     taken just before the frame was handed to the streamer;
//   - bits 48-63 (blocks 48-63): the frame counter modulo 65536.
//
// Everything here is pure (no GL) so the layout is unit-tested on its own and can be
// copied into other decoders (JavaScript in the browser tests mirrors `decode`).

#include <cstddef>
#include <cstdint>
#include <optional>

namespace glhost::strip {

constexpr int Rows = 16;
constexpr int Bits = 64;
constexpr int TimeBits = 48;
constexpr int CounterBits = 16;
constexpr uint64_t TimeMask = (uint64_t(1) << TimeBits) - 1;
constexpr uint64_t CounterMask = (uint64_t(1) << CounterBits) - 1;

// The smallest frame the strip fits in: every block at least one pixel wide.
constexpr int MinWidth = Bits;
constexpr int MinHeight = Rows;

struct Stamp {
    // Milliseconds since the Unix epoch (only the low 48 bits survive: until year 10889).
    uint64_t unixMs = 0;
    // The frame counter modulo 65536.
    uint16_t frame = 0;

    constexpr bool operator==(const Stamp& other) const {
        return unixMs == other.unixMs && frame == other.frame;
    }
};

// The 64-bit word the strip shows: block 0 is bit 63 of the word.
constexpr uint64_t encode(Stamp stamp) {
    return ((stamp.unixMs & TimeMask) << CounterBits) | (stamp.frame & CounterMask);
}

constexpr Stamp decodeWord(uint64_t word) {
    return Stamp{ word >> CounterBits, static_cast<uint16_t>(word & CounterMask) };
}

// Whether block `index` (0 = leftmost) of the strip showing `word` is white.
constexpr bool blockIsWhite(uint64_t word, int index) {
    return ((word >> (Bits - 1 - index)) & 1) != 0;
}

// First column of block `index` in a frame `width` pixels wide; `blockBegin(Bits, width)`
// is `width`. 64-bit arithmetic so 7680 * 64 cannot overflow anywhere.
constexpr int blockBegin(int index, int width) {
    return static_cast<int>(static_cast<int64_t>(index) * width / Bits);
}

// Reads a strip back from pixels. `topRow` points at the first pixel of the top image
// row (as the viewer sees it); `rowStride` is the byte distance to the next row down,
// negative for bottom-up buffers such as a plain glReadPixels (pass the last row's
// address then). `channels` is the bytes per pixel (1 grey, 3 RGB, 4 RGBA/BGRA: the
// first three are averaged). Each block is judged by the mean over its middle half
// horizontally and rows 4..11, so a lossy codec's ringing near block edges does not flip
// bits. Returns nothing when a block is neither clearly dark (< 96) nor clearly light
// (> 160): that frame did not carry a readable strip.
inline std::optional<Stamp> decode(const uint8_t* topRow, std::ptrdiff_t rowStride,
                                   int width, int height, int channels)
{
    if (topRow == nullptr || width < MinWidth || height < MinHeight || channels < 1) {
        return std::nullopt;
    }
    const int colorChannels = channels >= 3 ? 3 : 1;
    uint64_t word = 0;
    for (int i = 0; i < Bits; ++i) {
        const int begin = blockBegin(i, width);
        const int end = blockBegin(i + 1, width);
        const int quarter = (end - begin) / 4;
        const int x0 = begin + quarter;
        const int x1 = end - quarter; // exclusive; a 1-pixel block keeps its pixel
        uint64_t sum = 0;
        uint64_t count = 0;
        for (int y = 4; y < Rows - 4; ++y) {
            const uint8_t* row = topRow + y * rowStride;
            for (int x = x0; x < x1; ++x) {
                const uint8_t* pixel = row + static_cast<std::ptrdiff_t>(x) * channels;
                for (int c = 0; c < colorChannels; ++c) {
                    sum += pixel[c];
                }
                count += colorChannels;
            }
        }
        const uint64_t mean = sum / count;
        if (mean > 160) {
            word |= uint64_t(1) << (Bits - 1 - i);
        }
        else if (mean >= 96) {
            return std::nullopt;
        }
    }
    return decodeWord(word);
}

} // namespace glhost::strip

#endif // __OSW_GL_HOST___TIMESTAMP_STRIP___H__
