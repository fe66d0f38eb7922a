/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___TONE___H__
#define __OSW_GL_HOST___TONE___H__

// The A/V sync probe (`--tone-every N`): every Nth frame carries a short tone in the sound
// and a white square in the picture's bottom-left corner, so a viewer can measure how far
// apart it hears and sees them.
//
// The sound is a sample-accurate timeline of its own: each frame hands over the samples
// from where the previous frame's ended up to one frame period past the frame's time (the
// sound that plays while the frame is shown), so what the host hands is real time on
// average whatever its frame pacing does. A marked frame's samples begin with the tone: its
// first sample is the one handed over with that frame, the moment the frame is submitted.
//
// Pure (no GL, no audio device) so it is unit-tested on its own.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace glhost::tone {

constexpr int SampleRate = 48000;
constexpr int Channels = 2;
// 40 ms of a 1 kHz sine at half scale: short enough to stand apart at every 15th frame of
// 30 fps, long enough (40 periods) to survive a lossy codec.
constexpr double ToneSeconds = 0.040;
constexpr double ToneHz = 1000.0;
constexpr double ToneAmplitude = 0.5;

// Side of the white square in pixels for a frame `height` pixels tall (48 at 720p), at the
// picture's bottom-left corner, below the timestamp strip of the top rows.
constexpr int markSide(int height) {
    return height / 15 > 16 ? height / 15 : 16;
}

class ToneTrack {
public:
    // `every`: a tone with every `every`th frame (frames every, 2*every, ...; frame 0 never,
    // so the first tone comes after the stream settled a little). `fps`: the frame rate,
    // for the one-period look-ahead.
    ToneTrack(int every, int fps);

    // Whether frame `frame` is marked: its picture gets the square, its sound the tone.
    bool marks(long long frame) const;

    // The interleaved stereo PCM to hand over with frame `frame`, submitted `elapsedSeconds`
    // after the first frame: from where the last call ended up to `elapsedSeconds` plus one
    // frame period. Empty when the host is ahead (frames came faster than `fps`). The
    // returned vector stays valid until the next call.
    const std::vector<int16_t>& samplesFor(long long frame, double elapsedSeconds);

    // Sample frames handed over so far.
    long long samplesSent() const { return _sent; }

private:
    int _every;
    int _fps;
    long long _sent = 0;
    // The first sample of the tone playing now, or -1.
    long long _toneStart = -1;
    std::vector<int16_t> _chunk;
};

} // namespace glhost::tone

#endif // __OSW_GL_HOST___TONE___H__
