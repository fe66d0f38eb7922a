/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___OPTIONS___H__
#define __OSW_GL_HOST___OPTIONS___H__

#include <optional>
#include <string>
#include <vector>

namespace glhost {

// Everything the command line sets. Streamer fields left unset stay out of the JSON, so
// rust-core's own defaults (and its OSW_* environment overrides) apply.
struct Options {
    int width = 1280;
    int height = 720;
    int fps = 30;
    std::string capture = "readback";
    // What the host hands rust-core: "framebuffer" (the window's back buffer, as the
    // OpenSpace module does) or "texture" (an offscreen colour texture).
    std::string source = "framebuffer";
    std::string encoder = "auto";
    int port = 4700;
    std::optional<int> bitrateKbps;
    std::vector<std::string> iceAddresses;
    // Extra members merged over the generated ones (a JSON object's text).
    std::string extraConfigJson;
    // Stop after this many frames or seconds (whichever comes first); 0 runs until a
    // signal arrives.
    long long frames = 0;
    double seconds = 0.0;
    // Render without creating a streamer: the baseline for the streaming overhead.
    bool noStream = false;
    double statsIntervalSeconds = 5.0;
    // Read the strip back every frame and check it decodes to what was drawn.
    bool selfTestStrip = false;
    // glFinish before the timed submit call, so FRAMECOST is the call's own cost and not
    // the wait for the frame's rendering that software GL does inside any readback.
    bool finishBeforeSubmit = false;
    // Write the last frame as a binary PPM here before exiting.
    std::string screenshotPath;
    // Serve the stand-in for OpenSpace's JSON API WebSocket on this port (0: any free
    // one); OSW_API_WEBSOCKET_PORT overrides it (see resolveApiPort).
    std::optional<int> apiPort;
    // The A/V sync probe (tone.h): a tone and a marked frame every this many frames (0: off).
    int toneEvery = 0;
    // Where the tones go: "streamer" (osw_streamer_submit_audio; the configuration gets
    // "audio": "host") or "pulse" (PulseAudio's default sink; the stream's audio setting is
    // left to OSW_AUDIO, as the orchestrator's --audio pulse sets it).
    std::string toneOut = "streamer";
};

struct ParseResult {
    Options options;
    // Set when the arguments were wrong: the message to print before exiting with 2.
    std::string error;
    bool help = false;
};

ParseResult parseOptions(int argc, const char* const* argv);

std::string usageText(const char* program);

// The configuration JSON handed to osw_streamer_new: the options' fields, with the
// members of `extraConfigJson` replacing or adding to them. `error` is set (and the text
// is empty) when `extraConfigJson` is not a JSON object.
std::string buildConfigJson(const Options& options, std::string* error);

// The port of the JSON API stand-in, if it should run: `apiPortEnv` (the value of
// OSW_API_WEBSOCKET_PORT, null or empty when unset) wins over `--api-port`, as OSW_*
// variables win over the configuration everywhere else; the orchestrator sets it for
// every instance. `error` is set when the variable is not a port number.
std::optional<int> resolveApiPort(const Options& options, const char* apiPortEnv,
                                  std::string& error);

} // namespace glhost

#endif // __OSW_GL_HOST___OPTIONS___H__
