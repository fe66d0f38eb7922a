/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "options.h"

#include "json_members.h"
#include "timestamp_strip.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string_view>

namespace glhost {

namespace {

// The largest frame rust-core accepts (its MAX_DIMENSION).
constexpr int MaxDimension = 7680;
// The smallest: the timestamp strip needs a pixel per block; square keeps it simple.
constexpr int MinDimension = strip::MinWidth;

bool parseInt(std::string_view text, long long minimum, long long maximum,
              long long& out)
{
    if (text.empty()) {
        return false;
    }
    const std::string copy(text);
    char* end = nullptr;
    errno = 0;
    const long long value = std::strtoll(copy.c_str(), &end, 10);
    if (errno != 0 || end != copy.c_str() + copy.size()) {
        return false;
    }
    if (value < minimum || value > maximum) {
        return false;
    }
    out = value;
    return true;
}

bool parseSeconds(std::string_view text, double& out) {
    if (text.empty()) {
        return false;
    }
    const std::string copy(text);
    char* end = nullptr;
    errno = 0;
    const double value = std::strtod(copy.c_str(), &end);
    if (errno != 0 || end != copy.c_str() + copy.size() || !std::isfinite(value) ||
        value < 0.0)
    {
        return false;
    }
    out = value;
    return true;
}

bool oneOf(std::string_view value, std::initializer_list<std::string_view> choices) {
    for (std::string_view choice : choices) {
        if (value == choice) {
            return true;
        }
    }
    return false;
}

} // namespace

std::string usageText(const char* program) {
    return std::string("Usage: ") + program + " [options]\n" + R"(
Renders an animated scene with GL and streams it through rust-core's C ABI, making the
same calls as the OpenSpace module. Machine-readable lines go to stdout (see README.md).

  --width W, --height H     framebuffer size (default 1280x720, 64..7680)
  --fps F                   frames rendered per second (default 30, 1..240)
  --capture gl|readback     rust-core capture path (default readback)
  --source framebuffer|texture
                            hand rust-core the back buffer (default) or an offscreen
                            texture (osw_streamer_submit_texture)
  --encoder auto|x264|openh264|vp8|nvh264
                            encoder (default auto)
  --port P                  signaling port, 0 picks a free one (default 4700)
  --bitrate KBPS            target bitrate (default: rust-core's)
  --ice-address ADDR        gather ICE candidates on ADDR only (repeatable)
  --config-json '{...}'     extra configuration members, merged over the ones above
  --frames N                exit after N frames
  --seconds S               exit after S seconds
  --stats-interval S        print STATS every S seconds (default 5, 0 = never)
  --no-stream               render only, create no streamer (overhead baseline)
  --finish-before-submit    glFinish before the timed submit call (FRAMECOST then
                            excludes waiting for the frame's own rendering)
  --self-test-strip         read each frame's strip back and check it decodes
  --screenshot FILE         write the last frame to FILE as binary PPM
  --api-port P              serve a stand-in for OpenSpace's JSON API WebSocket on
                            127.0.0.1:P (0 picks a free one); OSW_API_WEBSOCKET_PORT
                            overrides it
  --tone-every N            every Nth frame: 40 ms of a 1 kHz tone in the sound and a
                            white square in the bottom-left corner (A/V sync probe)
  --tone-out streamer|pulse where the tones go: rust-core's C ABI (default; the stream
                            gets "audio": "host") or PulseAudio's default sink
  --help                    this text

rust-core applies OSW_* environment variables (OSW_LISTEN_PORT, OSW_CONTROL_SECRET, ...)
over the configuration. Exit codes: 0 done, 1 runtime error, 2 bad arguments.
)";
}

ParseResult parseOptions(int argc, const char* const* argv) {
    ParseResult result;
    Options& o = result.options;

    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        // Flags without a value first.
        if (arg == "--help" || arg == "-h") {
            result.help = true;
            return result;
        }
        if (arg == "--no-stream") {
            o.noStream = true;
            continue;
        }
        if (arg == "--self-test-strip") {
            o.selfTestStrip = true;
            continue;
        }
        if (arg == "--finish-before-submit") {
            o.finishBeforeSubmit = true;
            continue;
        }

        // Every other option takes one value: `--name value` or `--name=value`.
        std::string_view name = arg;
        std::string_view value;
        bool hasValue = false;
        if (const size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != arg.npos) {
            name = arg.substr(0, eq);
            value = arg.substr(eq + 1);
            hasValue = true;
        }
        const bool known = oneOf(name, {
            "--width", "--height", "--fps", "--capture", "--source", "--encoder", "--port",
            "--bitrate", "--ice-address", "--config-json", "--frames", "--seconds",
            "--stats-interval", "--screenshot", "--api-port", "--tone-every", "--tone-out"
        });
        if (!known) {
            result.error = "unknown option '" + std::string(arg) + "' (see --help)";
            return result;
        }
        if (!hasValue) {
            if (i + 1 >= argc) {
                result.error = "option " + std::string(name) + " needs a value";
                return result;
            }
            value = argv[++i];
        }
        auto bad = [&](const std::string& expected) {
            result.error = "bad value '" + std::string(value) + "' for " +
                           std::string(name) + ": expected " + expected;
            return result;
        };

        long long n = 0;
        if (name == "--width" || name == "--height") {
            if (!parseInt(value, MinDimension, MaxDimension, n)) {
                return bad("a whole number of pixels, 64..7680");
            }
            (name == "--width" ? o.width : o.height) = static_cast<int>(n);
        }
        else if (name == "--fps") {
            if (!parseInt(value, 1, 240, n)) {
                return bad("a whole number, 1..240");
            }
            o.fps = static_cast<int>(n);
        }
        else if (name == "--source") {
            if (!oneOf(value, { "framebuffer", "texture" })) {
                return bad("framebuffer or texture");
            }
            o.source = value;
        }
        else if (name == "--capture") {
            if (!oneOf(value, { "gl", "readback" })) {
                return bad("gl or readback");
            }
            o.capture = value;
        }
        else if (name == "--encoder") {
            if (!oneOf(value, { "auto", "x264", "openh264", "vp8", "nvh264" })) {
                return bad("auto, x264, openh264, vp8 or nvh264");
            }
            o.encoder = value;
        }
        else if (name == "--port") {
            if (!parseInt(value, 0, 65535, n)) {
                return bad("a port number, 0..65535");
            }
            o.port = static_cast<int>(n);
        }
        else if (name == "--bitrate") {
            if (!parseInt(value, 1, 10'000'000, n)) {
                return bad("a positive whole number of kbit/s");
            }
            o.bitrateKbps = static_cast<int>(n);
        }
        else if (name == "--ice-address") {
            if (value.empty()) {
                return bad("an IP address");
            }
            o.iceAddresses.emplace_back(value);
        }
        else if (name == "--config-json") {
            std::vector<json::Member> members;
            std::string error;
            if (!json::splitObject(value, members, error)) {
                return bad("a JSON object (" + error + ")");
            }
            o.extraConfigJson = value;
        }
        else if (name == "--frames") {
            if (!parseInt(value, 1, 1'000'000'000'000LL, n)) {
                return bad("a positive whole number");
            }
            o.frames = n;
        }
        else if (name == "--seconds") {
            if (!parseSeconds(value, o.seconds) || o.seconds <= 0.0) {
                return bad("a positive number of seconds");
            }
        }
        else if (name == "--stats-interval") {
            if (!parseSeconds(value, o.statsIntervalSeconds)) {
                return bad("a number of seconds, 0 or more");
            }
        }
        else if (name == "--screenshot") {
            if (value.empty()) {
                return bad("a file name");
            }
            o.screenshotPath = value;
        }
        else if (name == "--api-port") {
            if (!parseInt(value, 0, 65535, n)) {
                return bad("a port number, 0..65535");
            }
            o.apiPort = static_cast<int>(n);
        }
        else if (name == "--tone-every") {
            if (!parseInt(value, 1, 1'000'000, n)) {
                return bad("a positive whole number of frames");
            }
            o.toneEvery = static_cast<int>(n);
        }
        else if (name == "--tone-out") {
            if (!oneOf(value, { "streamer", "pulse" })) {
                return bad("streamer or pulse");
            }
            o.toneOut = value;
        }
    }

    return result;
}

std::string buildConfigJson(const Options& options, std::string* error) {
    std::vector<json::Member> members = {
        { "listenPort", std::to_string(options.port) },
        { "capture", json::quote(options.capture) },
        { "encoder", json::quote(options.encoder) },
        // The encoder budgets its bitrate for this rate (and x264 needs a fixed rate to
        // encode without a frame of delay): it is the rate the host renders at.
        { "fpsCap", std::to_string(options.fps) },
    };
    if (options.bitrateKbps) {
        members.emplace_back("bitrateKbps", std::to_string(*options.bitrateKbps));
    }
    if (options.toneEvery > 0 && options.toneOut == "streamer") {
        // The tones are handed to rust-core as PCM.
        members.emplace_back("audio", json::quote("host"));
    }
    if (!options.iceAddresses.empty()) {
        std::string list = "[";
        for (size_t i = 0; i < options.iceAddresses.size(); ++i) {
            list += (i > 0 ? "," : "") + json::quote(options.iceAddresses[i]);
        }
        members.emplace_back("iceAddresses", list + "]");
    }
    if (!options.extraConfigJson.empty()) {
        std::vector<json::Member> extra;
        std::string splitError;
        if (!json::splitObject(options.extraConfigJson, extra, splitError)) {
            if (error) {
                *error = "--config-json: " + splitError;
            }
            return {};
        }
        members = json::merge(std::move(members), extra);
    }
    return json::writeObject(members);
}

std::optional<int> resolveApiPort(const Options& options, const char* apiPortEnv,
                                  std::string& error)
{
    if (apiPortEnv == nullptr || *apiPortEnv == '\0') {
        return options.apiPort;
    }
    long long port = 0;
    if (!parseInt(apiPortEnv, 0, 65535, port)) {
        error = "bad OSW_API_WEBSOCKET_PORT '" + std::string(apiPortEnv) +
                "': expected a port number, 0..65535";
        return std::nullopt;
    }
    return static_cast<int>(port);
}

} // namespace glhost
