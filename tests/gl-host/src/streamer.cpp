/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "streamer.h"

#define GLFW_INCLUDE_NONE
#include <GLFW/glfw3.h>

#include <cstdio>
#include <vector>

namespace glhost {

namespace {

// rust-core's GL loader: glfwGetProcAddress behind the C ABI's callback signature, as in
// the OpenSpace module (which passes SGCT's GLFW the same way).
const void* getProcAddress(void*, const char* name) {
    return reinterpret_cast<const void*>(glfwGetProcAddress(name));
}

} // namespace

std::string describeFailure(osw_result result) {
    std::string text = osw_result_text(result);
    const size_t needed = osw_last_error(nullptr, 0);
    if (needed > 1) {
        std::vector<char> message(needed);
        // A message that changed size in between is not written; then say nothing more.
        if (osw_last_error(message.data(), message.size()) <= message.size()) {
            text += ": ";
            text += message.data();
        }
    }
    return text;
}

std::unique_ptr<Streamer> Streamer::create(const std::string& configJson,
                                           std::string& error)
{
    osw_streamer* streamer = nullptr;
    const osw_result result =
        osw_streamer_new(configJson.c_str(), getProcAddress, nullptr, &streamer);
    if (result != OSW_RESULT_OK) {
        error = describeFailure(result);
        return nullptr;
    }
    return std::unique_ptr<Streamer>(new Streamer(streamer));
}

Streamer::Streamer(osw_streamer* streamer)
    : _streamer(streamer)
{}

Streamer::~Streamer() {
    osw_streamer_free(_streamer);
}

osw_result Streamer::submitFramebuffer(int width, int height) {
    return osw_streamer_submit_framebuffer(_streamer, static_cast<uint32_t>(width),
        static_cast<uint32_t>(height));
}

osw_result Streamer::submitTexture(unsigned int texture, int width, int height) {
    return osw_streamer_submit_texture(_streamer, texture, static_cast<uint32_t>(width),
        static_cast<uint32_t>(height));
}

osw_result Streamer::submitAudio(const int16_t* pcm, size_t frames, uint32_t rate,
                                 uint32_t channels)
{
    return osw_streamer_submit_audio(_streamer, pcm, frames, rate, channels);
}

bool Streamer::pollEvent(osw_event& event) {
    return osw_streamer_poll_event(_streamer, &event);
}

bool Streamer::pollAppRequest(osw_app_request& request, std::string& text) {
    size_t needed = 0;
    const osw_result result = osw_streamer_poll_app_request(_streamer, &request,
        _appText.data(), _appText.size(), &needed);
    if (result != OSW_RESULT_OK) {
        std::fprintf(stderr, "osw-gl-host: app request: %s\n",
            describeFailure(result).c_str());
        return false;
    }
    if (request.kind == OSW_APP_REQUEST_KIND_NONE) {
        return false;
    }
    text.assign(_appText.data());
    return true;
}

void Streamer::replyAppRequest(uint64_t id, bool ok, const std::string& message) {
    const osw_result result = osw_streamer_reply_app_request(_streamer, id, ok,
        message.empty() ? nullptr : message.c_str());
    if (result != OSW_RESULT_OK) {
        std::fprintf(stderr, "osw-gl-host: app reply: %s\n",
            describeFailure(result).c_str());
    }
}

void Streamer::publishAppStatus(const std::string& json) {
    const osw_result result = osw_streamer_publish_app_status(_streamer, json.c_str());
    if (result != OSW_RESULT_OK) {
        std::fprintf(stderr, "osw-gl-host: app status: %s\n",
            describeFailure(result).c_str());
    }
}

std::string Streamer::statsJson() const {
    // Grown and retried on BUFFER_TOO_SMALL; the stats can grow between the two calls
    // (another viewer joins), hence the loop.
    std::vector<char> buffer(1024);
    for (int attempt = 0; attempt < 4; ++attempt) {
        size_t needed = 0;
        const osw_result result =
            osw_streamer_stats_json(_streamer, buffer.data(), buffer.size(), &needed);
        if (result == OSW_RESULT_OK) {
            return std::string(buffer.data());
        }
        if (result != OSW_RESULT_BUFFER_TOO_SMALL) {
            std::fprintf(stderr, "osw-gl-host: stats: %s\n",
                describeFailure(result).c_str());
            return {};
        }
        buffer.resize(needed);
    }
    std::fprintf(stderr, "osw-gl-host: stats: the JSON kept growing\n");
    return {};
}

uint16_t Streamer::signalingPort() const {
    return osw_streamer_signaling_port(_streamer);
}

} // namespace glhost
