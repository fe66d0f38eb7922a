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

#include <modules/webrtc/include/framecostmeter.h>

#include <algorithm>
#include <cmath>

namespace openspace {

void FrameCostMeter::add(std::chrono::steady_clock::duration duration) {
    using Micros = std::chrono::duration<float, std::micro>;
    _microseconds[_next] = std::chrono::duration_cast<Micros>(duration).count();
    _next = (_next + 1) % Capacity;
    _count = std::min(_count + 1, Capacity);
}

void FrameCostMeter::clear() {
    _next = 0;
    _count = 0;
}

size_t FrameCostMeter::count() const {
    return _count;
}

double FrameCostMeter::quantileMs(double q) const {
    if (_count == 0) {
        return 0.0;
    }
    std::array<float, Capacity> sorted = _microseconds;
    const auto end = sorted.begin() + static_cast<std::ptrdiff_t>(_count);
    std::sort(sorted.begin(), end);
    // Nearest rank: the smallest value with at least q of the samples at or below it
    const double rank = std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(_count));
    const size_t index = static_cast<size_t>(std::max(rank, 1.0)) - 1;
    return static_cast<double>(sorted[index]) / 1000.0;
}

} // namespace openspace
