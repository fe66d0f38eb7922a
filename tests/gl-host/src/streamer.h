/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___STREAMER___H__
#define __OSW_GL_HOST___STREAMER___H__

// A thin owner of rust-core's osw_streamer, making exactly the C ABI calls the OpenSpace
// module makes. It adds nothing but ownership and error text, so what this host does is
// what the module does.

#include <openspace_webrtc.h>

#include <memory>
#include <string>
#include <vector>

namespace glhost {

class Streamer {
public:
    // Creates the streamer with the calling thread's GL context current (rust-core wraps
    // that context for its capture). On failure returns nullptr and the reason in
    // `error`.
    static std::unique_ptr<Streamer> create(const std::string& configJson,
                                            std::string& error);

    // Frees the streamer, which deletes its GL objects: the context must be current.
    ~Streamer();

    Streamer(const Streamer&) = delete;
    Streamer& operator=(const Streamer&) = delete;

    // Hands over the frame in the bound read framebuffer.
    osw_result submitFramebuffer(int width, int height);
    osw_result submitTexture(unsigned int texture, int width, int height);
    // Hands over interleaved 16-bit PCM for the stream's sound (`audio: host`).
    osw_result submitAudio(const int16_t* pcm, size_t frames, uint32_t rate,
                           uint32_t channels);

    bool pollEvent(osw_event& event);

    // Takes the next owner's request of the `app` channel into `request` and its text
    // (script or view name) into `text`; false when none waits.
    bool pollAppRequest(osw_app_request& request, std::string& text);
    // Answers app request `id`; `message` is why not, or what it gave (empty: nothing).
    void replyAppRequest(uint64_t id, bool ok, const std::string& message);
    // Publishes the host's status (a JSON object) to every page.
    void publishAppStatus(const std::string& json);

    // The stats JSON; empty (with a message on stderr) if rust-core refused.
    std::string statsJson() const;

    uint16_t signalingPort() const;

private:
    explicit Streamer(osw_streamer* streamer);

    osw_streamer* _streamer = nullptr;
    // Where rust-core writes an app request's text: it caps one at 16 KiB, one more byte
    // for the NUL. Sized once, as the host asks every frame.
    std::vector<char> _appText = std::vector<char>(16 * 1024 + 1);
};

// "<result text>: <last error message of this thread>" for a failed call.
std::string describeFailure(osw_result result);

} // namespace glhost

#endif // __OSW_GL_HOST___STREAMER___H__
