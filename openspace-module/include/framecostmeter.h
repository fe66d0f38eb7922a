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

#ifndef __OPENSPACE_MODULE_WEBRTC___FRAMECOSTMETER___H__
#define __OPENSPACE_MODULE_WEBRTC___FRAMECOSTMETER___H__

#include <array>
#include <chrono>
#include <cstddef>

namespace openspace {

/**
 * Keeps the durations of the last `Capacity` frames of the module's own work in
 * `postDraw` (the hand-off to rust-core and the input drain) and answers their median
 * and 99th percentile, so that `openspace.webrtc.status()` can say what streaming costs
 * OpenSpace's render loop. Adding is constant time and never allocates; the percentiles
 * sort a copy, which only the status call pays for.
 */
class FrameCostMeter {
public:
    static constexpr size_t Capacity = 512;

    /// Records the duration of one frame's work
    void add(std::chrono::steady_clock::duration duration);

    /// Forgets every recorded frame (the streamer was stopped)
    void clear();

    /// The number of frames recorded, at most `Capacity`
    size_t count() const;

    /// The `q`-quantile (0 to 1, nearest rank) of the recorded durations in milliseconds;
    /// 0 when nothing was recorded
    double quantileMs(double q) const;

private:
    std::array<float, Capacity> _microseconds = {};
    size_t _next = 0;
    size_t _count = 0;
};

} // namespace openspace

#endif // __OPENSPACE_MODULE_WEBRTC___FRAMECOSTMETER___H__
