/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "tone_player.h"

#include "gl_functions.h"
#include "options.h"
#include "streamer.h"

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#ifdef OSW_GL_HOST_PULSE
#include <pulse/error.h>
#include <pulse/simple.h>
#endif

namespace glhost {

#ifdef OSW_GL_HOST_PULSE

// A playback stream on the PulseAudio server, written on a thread of its own: pa_simple
// blocks while the server's buffer is full, and the render loop must never wait for sound.
struct TonePlayer::Pulse {
    ~Pulse() {
        {
            std::lock_guard<std::mutex> lock(mutex);
            stopping = true;
        }
        wake.notify_one();
        if (writer.joinable()) {
            writer.join();
        }
        if (stream != nullptr) {
            pa_simple_free(stream);
        }
    }

    bool open(std::string& error) {
        pa_sample_spec spec = {};
        spec.format = PA_SAMPLE_S16LE;
        spec.rate = tone::SampleRate;
        spec.channels = tone::Channels;
        // A short playback buffer (20 ms), so the sound reaches the sink close to when it
        // was handed over; the rest of its latency is the server's.
        pa_buffer_attr attr = {};
        attr.maxlength = static_cast<uint32_t>(-1);
        attr.tlength = static_cast<uint32_t>(pa_usec_to_bytes(20000, &spec));
        attr.prebuf = static_cast<uint32_t>(-1);
        attr.minreq = static_cast<uint32_t>(-1);
        attr.fragsize = static_cast<uint32_t>(-1);
        int code = 0;
        stream = pa_simple_new(nullptr, "osw-gl-host", PA_STREAM_PLAYBACK, nullptr,
            "A/V sync tones", &spec, nullptr, &attr, &code);
        if (stream == nullptr) {
            error = std::string("cannot open a PulseAudio playback stream: ") +
                    pa_strerror(code);
            return false;
        }
        writer = std::thread([this] { run(); });
        return true;
    }

    void push(const std::vector<int16_t>& pcm) {
        {
            std::lock_guard<std::mutex> lock(mutex);
            // A stuck server must not make us hoard sound: keep half a second at most.
            while (queue.size() > 15) {
                queue.pop_front();
            }
            queue.push_back(pcm);
        }
        wake.notify_one();
    }

    void run() {
        for (;;) {
            std::vector<int16_t> chunk;
            {
                std::unique_lock<std::mutex> lock(mutex);
                wake.wait(lock, [this] { return stopping || !queue.empty(); });
                if (stopping) {
                    return;
                }
                chunk = std::move(queue.front());
                queue.pop_front();
            }
            int code = 0;
            if (pa_simple_write(stream, chunk.data(), chunk.size() * sizeof(int16_t),
                    &code) < 0)
            {
                std::fprintf(stderr, "osw-gl-host: PulseAudio write: %s\n",
                    pa_strerror(code));
                return;
            }
        }
    }

    pa_simple* stream = nullptr;
    std::thread writer;
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<std::vector<int16_t>> queue;
    bool stopping = false;
};

#else

struct TonePlayer::Pulse {
    bool open(std::string& error) {
        error = "this osw-gl-host was built without libpulse-simple (libpulse-dev): "
                "--tone-out pulse is not available";
        return false;
    }
    void push(const std::vector<int16_t>&) {}
};

#endif

TonePlayer::TonePlayer(int every, int fps)
    : _track(every, fps)
{}

TonePlayer::~TonePlayer() = default;

std::unique_ptr<TonePlayer> TonePlayer::create(const Options& options, Streamer* streamer,
                                               std::string& error)
{
    std::unique_ptr<TonePlayer> player(new TonePlayer(options.toneEvery, options.fps));
    if (options.toneOut == "pulse") {
        player->_pulse = std::make_unique<Pulse>();
        if (!player->_pulse->open(error)) {
            return nullptr;
        }
    }
    else {
        player->_streamer = streamer;
    }
    std::fprintf(stderr, "osw-gl-host: a %g ms tone at %g Hz with every %dth frame, to %s\n",
        tone::ToneSeconds * 1000.0, tone::ToneHz, options.toneEvery,
        options.toneOut.c_str());
    return player;
}

bool TonePlayer::frame(long long frame) {
    const auto now = std::chrono::steady_clock::now();
    if (!_started) {
        _start = now;
        _started = true;
    }
    const double elapsed = std::chrono::duration<double>(now - _start).count();
    const std::vector<int16_t>& pcm = _track.samplesFor(frame, elapsed);
    if (!pcm.empty()) {
        if (_pulse) {
            _pulse->push(pcm);
        }
        else if (_streamer) {
            const osw_result result = _streamer->submitAudio(pcm.data(),
                pcm.size() / tone::Channels, tone::SampleRate, tone::Channels);
            // FRAME_DROPPED: the stream has not started yet (before the first frame).
            if (result != OSW_RESULT_OK && result != OSW_RESULT_FRAME_DROPPED &&
                !_streamerFailed)
            {
                _streamerFailed = true;
                std::fprintf(stderr, "osw-gl-host: osw_streamer_submit_audio: %s\n",
                    describeFailure(result).c_str());
            }
        }
    }
    return _track.marks(frame);
}

void drawToneMark(int, int height) {
    const int side = tone::markSide(height);
    glEnable(GL_SCISSOR_TEST);
    // GL's origin is bottom-left, as the viewer's bottom-left corner.
    glScissor(0, 0, side, side);
    glClearColor(1.f, 1.f, 1.f, 1.f);
    glClear(GL_COLOR_BUFFER_BIT);
    glDisable(GL_SCISSOR_TEST);
}

} // namespace glhost
