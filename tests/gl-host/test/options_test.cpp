/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

// Command-line parsing, the configuration JSON the host hands to osw_streamer_new, and
// the FRAMECOST summary.

#include "check.h"
#include "frame_cost.h"
#include "json_members.h"
#include "options.h"

#include <initializer_list>
#include <vector>

using namespace glhost;

namespace {

ParseResult parse(std::initializer_list<const char*> args) {
    std::vector<const char*> argv = { "osw-gl-host" };
    argv.insert(argv.end(), args.begin(), args.end());
    return parseOptions(static_cast<int>(argv.size()), argv.data());
}

std::string config(std::initializer_list<const char*> args) {
    const ParseResult parsed = parse(args);
    std::string error;
    std::string json = buildConfigJson(parsed.options, &error);
    return error.empty() ? json : "error: " + error;
}

} // namespace

int main() {
    // Defaults.
    {
        const ParseResult r = parse({});
        CHECK(r.error.empty() && !r.help);
        CHECK(r.options.width == 1280 && r.options.height == 720 && r.options.fps == 30);
        CHECK(r.options.capture == "readback" && r.options.encoder == "auto");
        CHECK(r.options.port == 4700 && !r.options.noStream);
        CHECK(r.options.statsIntervalSeconds == 5.0);
        CHECK(config({}) ==
              R"({"listenPort":4700,"capture":"readback","encoder":"auto","fpsCap":30})");
    }

    // Every option, both spellings.
    {
        const ParseResult r = parse({ "--width", "640", "--height=360", "--fps", "60",
            "--capture", "gl", "--encoder=vp8", "--port", "0", "--bitrate", "2500",
            "--ice-address", "127.0.0.1", "--frames", "10", "--seconds", "2.5",
            "--stats-interval", "0", "--no-stream", "--self-test-strip",
            "--screenshot", "/tmp/x.ppm" });
        CHECK(r.error.empty());
        CHECK(r.options.width == 640 && r.options.height == 360 && r.options.fps == 60);
        CHECK(r.options.capture == "gl" && r.options.encoder == "vp8");
        CHECK(r.options.port == 0 && r.options.bitrateKbps == 2500);
        CHECK(r.options.iceAddresses == std::vector<std::string>{ "127.0.0.1" });
        CHECK(r.options.frames == 10 && r.options.seconds == 2.5);
        CHECK(r.options.statsIntervalSeconds == 0.0);
        CHECK(r.options.noStream && r.options.selfTestStrip);
        CHECK(r.options.screenshotPath == "/tmp/x.ppm");
    }
    CHECK(parse({ "--help" }).help);

    // The JSON API stand-in's port: --api-port, OSW_API_WEBSOCKET_PORT over it.
    {
        CHECK(!parse({}).options.apiPort);
        const ParseResult r = parse({ "--api-port", "4682" });
        CHECK(r.error.empty() && r.options.apiPort == 4682);
        CHECK(parse({ "--api-port=0" }).options.apiPort == 0);
        std::string error;
        CHECK(resolveApiPort(r.options, nullptr, error) == 4682 && error.empty());
        CHECK(resolveApiPort(r.options, "", error) == 4682 && error.empty());
        CHECK(resolveApiPort(r.options, "4690", error) == 4690 && error.empty());
        CHECK(resolveApiPort(parse({}).options, "0", error) == 0 && error.empty());
        CHECK(!resolveApiPort(parse({}).options, nullptr, error) && error.empty());
        for (const char* bad : { "x", "65536", "-1", "4682 " }) {
            error.clear();
            CHECK(!resolveApiPort(r.options, bad, error) && !error.empty());
        }
    }

    // The A/V sync probe: off by default; to the streamer it makes the stream's audio host
    // PCM, to PulseAudio it leaves the audio setting to the environment.
    {
        CHECK(parse({}).options.toneEvery == 0 && parse({}).options.toneOut == "streamer");
        const ParseResult r = parse({ "--tone-every", "15", "--tone-out=pulse" });
        CHECK(r.error.empty() && r.options.toneEvery == 15 && r.options.toneOut == "pulse");
        CHECK(config({ "--tone-every", "15" }) ==
              R"({"listenPort":4700,"capture":"readback","encoder":"auto","fpsCap":30,)"
              R"("audio":"host"})");
        CHECK(config({ "--tone-every", "15", "--tone-out", "pulse" }) ==
              R"({"listenPort":4700,"capture":"readback","encoder":"auto","fpsCap":30})");
        CHECK(config({ "--tone-every", "15", "--config-json", R"({"audio":"none"})" }) ==
              R"({"listenPort":4700,"capture":"readback","encoder":"auto","fpsCap":30,)"
              R"("audio":"none"})");
    }

    // Bad arguments are refused with a message (the host exits with 2).
    for (auto args : std::vector<std::initializer_list<const char*>>{
             { "--width" }, { "--width", "abc" }, { "--width", "63" },
             { "--height", "7681" }, { "--fps", "0" }, { "--fps", "2.5" },
             { "--capture", "cpu" }, { "--encoder", "h265" }, { "--port", "65536" },
             { "--port", "-1" }, { "--bitrate", "0" }, { "--frames", "0" },
             { "--seconds", "0" }, { "--seconds", "nan" }, { "--stats-interval", "-1" },
             { "--config-json", "[1]" }, { "--config-json", "{\"a\":}" },
             { "--frobnicate" }, { "positional" }, { "--api-port", "65536" },
             { "--api-port", "x" }, { "--api-port" }, { "--tone-every", "0" },
             { "--tone-every", "x" }, { "--tone-out", "alsa" } })
    {
        CHECK(!parse(args).error.empty());
    }

    // The generated members, and --config-json merged over them.
    CHECK(config({ "--bitrate", "3000", "--ice-address", "127.0.0.1", "--ice-address",
                   "::1" }) ==
          R"({"listenPort":4700,"capture":"readback","encoder":"auto","fpsCap":30,)"
          R"("bitrateKbps":3000,"iceAddresses":["127.0.0.1","::1"]})");
    CHECK(config({ "--port", "0", "--config-json",
                   R"( { "listenPort" : 4711, "turnServers": ["turn://u:p@h:3478"],)"
                   R"( "stunServer":"stun://127.0.0.1:3478" } )" }) ==
          R"({"listenPort":4711,"capture":"readback","encoder":"auto","fpsCap":30,)"
          R"("turnServers":["turn://u:p@h:3478"],"stunServer":"stun://127.0.0.1:3478"})");

    // The member splitter.
    {
        std::vector<json::Member> members;
        std::string error;
        CHECK(json::splitObject("{}", members, error) && members.empty());
        CHECK(json::splitObject(
            R"({"a":{"b":[1,{"c":"}]"}]},"d\"e":"x\\","f":-1.5e3,"g":null})", members,
            error));
        CHECK(members.size() == 4);
        CHECK(members.size() == 4 && members[0].second == R"({"b":[1,{"c":"}]"}]})");
        CHECK(members.size() == 4 && members[1].first == R"(d\"e)");
        CHECK(members.size() == 4 && members[2].second == "-1.5e3");
        for (const char* bad : { "", "[]", "{", "{\"a\"}", "{\"a\":1,}",
                                 "{\"a\":1 \"b\":2}", "{\"a\":[1}", "{\"a\":\"x}",
                                 "{} x", "{a:1}" })
        {
            CHECK(!json::splitObject(bad, members, error));
        }
        CHECK(json::quote("a\"b\\c\n") == R"("a\"b\\c\n")");
    }

    // FRAMECOST: nearest-rank median and p95.
    {
        CHECK(summarizeFrameCost({}).samples == 0);
        const FrameCost one = summarizeFrameCost({ 7.0 });
        CHECK(one.medianUs == 7.0 && one.p95Us == 7.0 && one.samples == 1);
        std::vector<double> hundred;
        for (int i = 100; i >= 1; --i) {
            hundred.push_back(i);
        }
        const FrameCost cost = summarizeFrameCost(hundred);
        CHECK(cost.medianUs == 50.0 && cost.p95Us == 95.0 && cost.samples == 100);
    }

    return CHECK_RESULT();
}
