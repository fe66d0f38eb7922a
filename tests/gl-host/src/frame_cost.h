/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___FRAME_COST___H__
#define __OSW_GL_HOST___FRAME_COST___H__

// What handing a frame to rust-core costs the render thread: the time spent inside
// osw_streamer_submit_framebuffer, per frame. The median and p95 are the numbers the
// benchmarks compare (OpenSpace's frame budget is what the streamer must not eat).

#include <algorithm>
#include <cmath>
#include <vector>

namespace glhost {

struct FrameCost {
    double medianUs = 0.0;
    double p95Us = 0.0;
    size_t samples = 0;
};

// Nearest-rank percentiles (the median of an even count is the lower middle sample), so
// every reported number is a duration that was really measured.
inline FrameCost summarizeFrameCost(std::vector<double> samplesUs) {
    FrameCost cost;
    cost.samples = samplesUs.size();
    if (samplesUs.empty()) {
        return cost;
    }
    std::sort(samplesUs.begin(), samplesUs.end());
    auto rank = [&](double fraction) {
        const double n = std::ceil(fraction * static_cast<double>(samplesUs.size()));
        const size_t index = n < 1.0 ? 0 : static_cast<size_t>(n) - 1;
        return samplesUs[std::min(index, samplesUs.size() - 1)];
    };
    cost.medianUs = rank(0.5);
    cost.p95Us = rank(0.95);
    return cost;
}

} // namespace glhost

#endif // __OSW_GL_HOST___FRAME_COST___H__
