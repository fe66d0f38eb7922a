/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "tone.h"

#include <algorithm>
#include <cmath>

namespace glhost::tone {

namespace {

constexpr double Pi = 3.14159265358979323846;
constexpr long long ToneSamples = static_cast<long long>(ToneSeconds * SampleRate);

} // namespace

ToneTrack::ToneTrack(int every, int fps)
    : _every(std::max(every, 1))
    , _fps(std::max(fps, 1))
{}

bool ToneTrack::marks(long long frame) const {
    return frame > 0 && frame % _every == 0;
}

const std::vector<int16_t>& ToneTrack::samplesFor(long long frame, double elapsedSeconds) {
    const double until = std::max(elapsedSeconds, 0.0) + 1.0 / _fps;
    const long long target = static_cast<long long>(std::llround(until * SampleRate));
    // After a stall (more than two periods late) the sound it missed is skipped, not handed
    // late: rust-core takes a call's samples as starting now, so late sound would play late
    // from then on. A frame late by less keeps all of its sound.
    const long long period = SampleRate / _fps;
    if (target - _sent > 2 * period) {
        _sent = target - period;
    }
    const long long count = std::max(target - _sent, 0LL);
    if (marks(frame)) {
        // The tone starts with this frame's first sample, whatever was playing.
        _toneStart = _sent;
    }
    _chunk.assign(static_cast<size_t>(count) * Channels, 0);
    for (long long i = 0; i < count; ++i) {
        const long long n = _sent + i;
        if (_toneStart < 0 || n < _toneStart || n >= _toneStart + ToneSamples) {
            continue;
        }
        const double t = static_cast<double>(n - _toneStart) / SampleRate;
        const double value = ToneAmplitude * std::sin(2.0 * Pi * ToneHz * t);
        const auto sample = static_cast<int16_t>(std::lround(value * 32767.0));
        for (int c = 0; c < Channels; ++c) {
            _chunk[static_cast<size_t>(i) * Channels + c] = sample;
        }
    }
    _sent += count;
    if (_toneStart >= 0 && _sent >= _toneStart + ToneSamples) {
        _toneStart = -1;
    }
    return _chunk;
}

} // namespace glhost::tone
