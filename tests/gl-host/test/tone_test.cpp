/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

// The A/V sync probe's sound: which frames carry a tone, that the tone starts with the
// marked frame's first sample and lasts 40 ms, and that the samples handed over keep up
// with real time however the frames are paced.

#include "check.h"
#include "tone.h"

#include <cmath>
#include <cstdlib>

using namespace glhost;

namespace {

// Index of the first non-zero sample frame in `pcm`, or -1.
long long firstSound(const std::vector<int16_t>& pcm) {
    for (size_t i = 0; i < pcm.size(); ++i) {
        if (pcm[i] != 0) {
            return static_cast<long long>(i / tone::Channels);
        }
    }
    return -1;
}

long long soundingFrames(const std::vector<int16_t>& pcm) {
    long long last = -1;
    for (size_t i = 0; i < pcm.size(); ++i) {
        if (std::abs(pcm[i]) > 0) {
            last = static_cast<long long>(i / tone::Channels);
        }
    }
    return last + 1;
}

} // namespace

int main() {
    // Every 15th frame, never frame 0.
    {
        tone::ToneTrack track(15, 30);
        CHECK(!track.marks(0) && !track.marks(14) && track.marks(15) && track.marks(30));
        CHECK(!track.marks(31));
    }

    // Paced at exactly 30 fps: 1600 sample frames a frame, one period ahead; silence until
    // the marked frame, whose chunk starts with the tone; the tone goes on into the next
    // chunk and stops after 40 ms (1920 sample frames).
    {
        tone::ToneTrack track(3, 30);
        std::vector<int16_t> all;
        long long toneAt = -1;
        for (long long frame = 0; frame < 6; ++frame) {
            const std::vector<int16_t>& pcm = track.samplesFor(frame, frame / 30.0);
            CHECK(pcm.size() == 1600 * tone::Channels);
            if (frame < 3) {
                CHECK(firstSound(pcm) == -1);
            }
            if (frame == 3) {
                toneAt = static_cast<long long>(all.size() / tone::Channels);
                CHECK(firstSound(pcm) == 1);  // sin(0) is 0: the second sample is the first loud one
            }
            all.insert(all.end(), pcm.begin(), pcm.end());
        }
        CHECK(track.samplesSent() == 6 * 1600);
        CHECK(toneAt == 3 * 1600);
        const std::vector<int16_t> tail(all.begin() + toneAt * tone::Channels, all.end());
        const long long sounding = soundingFrames(tail);
        CHECK(sounding > 1900 && sounding <= 1920);
        // Half scale at the sine's peak (a quarter period in: 12 samples at 1 kHz).
        CHECK(std::abs(tail[12 * tone::Channels] - 16384) < 10);
        // Both channels carry it.
        CHECK(tail[12 * tone::Channels] == tail[12 * tone::Channels + 1]);
    }

    // Late and early frames: the total follows the clock, not the frame count; after a
    // stall the sound it missed is skipped (one period is handed, not 200 ms late); a frame
    // late by less keeps all of its sound.
    {
        tone::ToneTrack track(1000, 30);
        track.samplesFor(0, 0.0);
        CHECK(track.samplesFor(1, 0.2).size() == 1600 * tone::Channels);
        CHECK(track.samplesSent() == std::llround((0.2 + 1.0 / 30) * 48000));
        CHECK(track.samplesFor(2, 0.21).size() == 480 * tone::Channels);
        CHECK(track.samplesFor(3, 0.15).empty());  // ahead of what was sent: nothing more
        CHECK(track.samplesFor(4, 0.26).size() == 2400 * tone::Channels);  // 50 ms late
    }
    return CHECK_RESULT();
}
