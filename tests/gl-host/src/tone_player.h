/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___TONE_PLAYER___H__
#define __OSW_GL_HOST___TONE_PLAYER___H__

// Plays the A/V sync probe (tone.h): each frame's PCM goes to rust-core through the C ABI
// (`--tone-out streamer`, the stream then needs `audio: host`) or to PulseAudio
// (`--tone-out pulse`: the server in PULSE_SERVER, whose sink monitor rust-core captures
// with `audio: pulse`, the path OpenSpace's own sound takes), and the marked frames get
// their white square.

#include "tone.h"

#include <chrono>
#include <memory>
#include <string>

namespace glhost {

struct Options;
class Streamer;

class TonePlayer {
public:
    // For `--tone-every` (options.toneEvery > 0): the tones go to `streamer` (may be null
    // with --no-stream: they go nowhere then) or, with `--tone-out pulse`, to PulseAudio.
    // Returns nullptr and the reason in `error` when the output cannot be opened (no
    // PulseAudio server, a host built without libpulse-simple).
    static std::unique_ptr<TonePlayer> create(const Options& options, Streamer* streamer,
                                              std::string& error);
    ~TonePlayer();

    TonePlayer(const TonePlayer&) = delete;
    TonePlayer& operator=(const TonePlayer&) = delete;

    // Hands over frame `frame`'s sound (call right before submitting the frame); returns
    // whether the frame is marked, i.e. must get drawToneMark before it is submitted.
    bool frame(long long frame);

private:
    struct Pulse;

    TonePlayer(int every, int fps);

    tone::ToneTrack _track;
    Streamer* _streamer = nullptr;
    bool _streamerFailed = false;
    std::unique_ptr<Pulse> _pulse;
    std::chrono::steady_clock::time_point _start;
    bool _started = false;
};

// The white square of a marked frame (tone::markSide), at the bottom-left corner of the
// bound draw framebuffer.
void drawToneMark(int width, int height);

} // namespace glhost

#endif // __OSW_GL_HOST___TONE_PLAYER___H__
