/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

// osw-gl-host: stands in for OpenSpace in tests and benchmarks. It renders an animated
// scene with GL into a GLFW window's default framebuffer and, every frame, makes the
// calls the OpenSpace module makes in postDraw: bind the default framebuffer for reading,
// select the back buffer, osw_streamer_submit_framebuffer, then swap. Input from the
// browser arrives as events it drains at the start of each frame. See README.md for the
// stdout line protocol the test harness reads.

#include "api_server.h"
#include "app_requests.h"
#include "camera.h"
#include "frame_cost.h"
#include "gl_functions.h"
#include "input.h"
#include "offscreen_target.h"
#include "options.h"
#include "protocol.h"
#include "scene.h"
#include "screenshot.h"
#include "streamer.h"
#include "strip_renderer.h"
#include "timestamp_strip.h"
#include "tone_player.h"

#define GLFW_INCLUDE_NONE
#include <GLFW/glfw3.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

namespace {

using namespace glhost;
using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t stopRequested = 0;

void onSignal(int) {
    stopRequested = 1;
}

void onGlfwError(int code, const char* description) {
    std::fprintf(stderr, "osw-gl-host: GLFW error %d: %s\n", code, description);
}

// The strip's time: wall clock, not steady, because the viewer compares it with its own
// wall clock to measure latency.
uint64_t unixMillis() {
    using namespace std::chrono;
    return static_cast<uint64_t>(
        duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

double secondsSince(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

GLFWwindow* createWindow(const Options& options) {
    // GL 3.3 core, as OpenSpace asks for a core profile: rust-core's capture must work
    // with the context type it will meet there.
    glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
    glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 3);
    glfwWindowHint(GLFW_OPENGL_PROFILE, GLFW_OPENGL_CORE_PROFILE);
    glfwWindowHint(GLFW_OPENGL_FORWARD_COMPAT, GLFW_TRUE);
    glfwWindowHint(GLFW_DOUBLEBUFFER, GLFW_TRUE);
    // A single-sampled back buffer, like SGCT's window 0 after its final blit: reads and
    // copies from it need no resolve.
    glfwWindowHint(GLFW_SAMPLES, 0);
    glfwWindowHint(GLFW_SRGB_CAPABLE, GLFW_FALSE);
    glfwWindowHint(GLFW_SCALE_TO_MONITOR, GLFW_FALSE);
    GLFWwindow* window = glfwCreateWindow(options.width, options.height,
        "OpenSpace WebRTC GL host", nullptr, nullptr);
    if (window != nullptr) {
        glfwMakeContextCurrent(window);
        // Paced by our own sleep, never by the display: vsync would hide the real cost.
        glfwSwapInterval(0);
    }
    return window;
}

// Everything a run needs once the window and context exist.
struct Run {
    Run(const Options& o, GLFWwindow* w) : options(o), window(w) {}

    const Options& options;
    GLFWwindow* window;
    Scene scene;
    Camera camera;
    std::unique_ptr<Streamer> streamer;
    // The A/V sync probe, with --tone-every.
    std::unique_ptr<TonePlayer> tone;
    std::vector<double> submitUs;
    long long frames = 0;
    long long stripFailures = 0;
    // The render target with `--source texture`.
    OffscreenTarget offscreen;
};

// The frame loop. Returns the process's exit code.
int runFrames(Run& run) {
    const Options& options = run.options;
    const Clock::time_point start = Clock::now();
    const Clock::duration period = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(1.0 / options.fps));
    Clock::time_point nextFrame = start;
    Clock::time_point nextStats = start + std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(options.statsIntervalSeconds));

    int fbWidth = 0;
    int fbHeight = 0;
    glfwGetFramebufferSize(run.window, &fbWidth, &fbHeight);
    std::fprintf(stderr, "osw-gl-host: framebuffer %dx%d at %d fps\n", fbWidth, fbHeight,
        options.fps);

    bool lastFrame = stopRequested != 0;
    while (!lastFrame) {
        glfwPollEvents();

        // Input first, as OpenSpace handles it in preSync before drawing.
        InputOutcome input;
        if (run.streamer) {
            osw_event event = {};
            while (run.streamer->pollEvent(event)) {
                applyEvent(event, fbWidth, fbHeight, run.camera, input);
            }
            input.cameraChanged |= handleAppRequests(*run.streamer, run.camera);
        }
        if (input.cameraChanged) {
            protocol::camera(run.camera.yaw(), run.camera.pitch(), run.camera.distance());
        }
        if (input.requestedWidth > 0) {
            std::fprintf(stderr, "osw-gl-host: resize to %dx%d requested\n",
                input.requestedWidth, input.requestedHeight);
            glfwSetWindowSize(run.window, input.requestedWidth, input.requestedHeight);
        }

        int width = 0;
        int height = 0;
        glfwGetFramebufferSize(run.window, &width, &height);
        if (width < strip::MinWidth || height < strip::MinHeight) {
            // Minimized or not yet mapped: nothing sensible to render or send.
            std::this_thread::sleep_for(period);
            lastFrame = stopRequested != 0 || glfwWindowShouldClose(run.window);
            continue;
        }
        if (width != fbWidth || height != fbHeight) {
            fbWidth = width;
            fbHeight = height;
            protocol::resize(fbWidth, fbHeight);
        }

        // The animation follows the frame count, not the clock, so a given frame looks
        // the same in every run (dropped or late frames do not change the picture).
        const bool offscreen = options.source == "texture";
        if (offscreen && !run.offscreen.bindForDrawing(fbWidth, fbHeight)) {
            std::fprintf(stderr, "osw-gl-host: the offscreen framebuffer is incomplete\n");
            return 1;
        }
        run.scene.render(run.camera, fbWidth, fbHeight,
            static_cast<double>(run.frames) / options.fps);
        const strip::Stamp stamp = { unixMillis(), static_cast<uint16_t>(run.frames) };
        drawTimestampStrip(strip::encode(stamp), fbWidth, fbHeight);
        if (run.tone && run.tone->frame(run.frames)) {
            drawToneMark(fbWidth, fbHeight);
            protocol::tone(run.frames, stamp.unixMs);
        }

        if (offscreen) {
            run.offscreen.copyToWindow();
        }
        // What the module does in postDraw: the finished image is in the default
        // framebuffer's back buffer.
        glBindFramebuffer(GL_READ_FRAMEBUFFER, 0);
        glReadBuffer(GL_BACK);
        if (options.selfTestStrip) {
            const std::optional<strip::Stamp> read =
                readTimestampStrip(fbWidth, fbHeight);
            if (!read || !(*read == stamp)) {
                ++run.stripFailures;
                std::fprintf(stderr,
                    "osw-gl-host: strip of frame %lld did not read back\n", run.frames);
            }
        }
        if (run.streamer) {
            if (options.finishBeforeSubmit) {
                glFinish();
            }
            const Clock::time_point before = Clock::now();
            const osw_result result = offscreen ?
                run.streamer->submitTexture(run.offscreen.texture(), fbWidth, fbHeight) :
                run.streamer->submitFramebuffer(fbWidth, fbHeight);
            run.submitUs.push_back(
                std::chrono::duration<double, std::micro>(Clock::now() - before).count());
            if (result != OSW_RESULT_OK && result != OSW_RESULT_FRAME_DROPPED) {
                std::fprintf(stderr, "osw-gl-host: osw_streamer_submit_framebuffer: %s\n",
                    describeFailure(result).c_str());
                return 1;
            }
        }
        ++run.frames;

        lastFrame = stopRequested != 0 || glfwWindowShouldClose(run.window) ||
                    (options.frames > 0 && run.frames >= options.frames) ||
                    (options.seconds > 0.0 && secondsSince(start) >= options.seconds);
        if (lastFrame && !options.screenshotPath.empty()) {
            // Before the swap: afterwards the back buffer's content is undefined.
            if (!writeScreenshot(options.screenshotPath, fbWidth, fbHeight)) {
                std::fprintf(stderr, "osw-gl-host: cannot write %s\n",
                    options.screenshotPath.c_str());
            }
        }
        glfwSwapBuffers(run.window);

        const Clock::time_point now = Clock::now();
        if (run.streamer && options.statsIntervalSeconds > 0.0 && now >= nextStats) {
            const std::string stats = run.streamer->statsJson();
            if (!stats.empty()) {
                protocol::stats(stats);
            }
            while (nextStats <= now) {
                nextStats += std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(options.statsIntervalSeconds));
            }
        }

        // Fixed-rate pacing against absolute deadlines, so sleep jitter does not add up;
        // after a stall of more than a frame, start afresh rather than rush to catch up.
        nextFrame += period;
        if (now > nextFrame + period) {
            nextFrame = now;
        }
        std::this_thread::sleep_until(nextFrame);
    }

    const double elapsed = secondsSince(start);
    std::fprintf(stderr, "osw-gl-host: %lld frames in %.2f s (%.1f fps)\n", run.frames,
        elapsed, elapsed > 0.0 ? run.frames / elapsed : 0.0);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    const ParseResult parsed = parseOptions(argc, argv);
    if (parsed.help) {
        std::fputs(usageText(argv[0]).c_str(), stdout);
        return 0;
    }
    if (!parsed.error.empty()) {
        std::fprintf(stderr, "osw-gl-host: %s\n", parsed.error.c_str());
        return 2;
    }
    const Options& options = parsed.options;
    std::string configError;
    const std::string configJson = buildConfigJson(options, &configError);
    if (!configError.empty()) {
        std::fprintf(stderr, "osw-gl-host: %s\n", configError.c_str());
        return 2;
    }

    const std::optional<int> apiPort =
        resolveApiPort(options, std::getenv("OSW_API_WEBSOCKET_PORT"), configError);
    if (!configError.empty()) {
        std::fprintf(stderr, "osw-gl-host: %s\n", configError.c_str());
        return 2;
    }

    std::signal(SIGINT, onSignal);
    std::signal(SIGTERM, onSignal);

    // Before the window, as OpenSpace's server module listens during initialization. A
    // port that is taken costs the API, not the stream: OpenSpace too carries on without
    // its server then.
    std::unique_ptr<ApiServer> api;
    if (apiPort) {
        std::string apiError;
        api = ApiServer::start(static_cast<uint16_t>(*apiPort), protocol::apiRan, apiError);
        if (api) {
            std::fprintf(stderr, "osw-gl-host: stand-in for OpenSpace's JSON API on "
                "ws://127.0.0.1:%u/\n", static_cast<unsigned>(api->port()));
            protocol::apiListening(api->port());
        }
        else {
            std::fprintf(stderr, "osw-gl-host: no JSON API stand-in: %s\n",
                apiError.c_str());
        }
    }

    glfwSetErrorCallback(onGlfwError);
    if (!glfwInit()) {
        std::fprintf(stderr, "osw-gl-host: cannot initialize GLFW (no display? see "
            "README.md for running under Xvfb)\n");
        return 1;
    }
    GLFWwindow* window = createWindow(options);
    if (window == nullptr) {
        std::fprintf(stderr, "osw-gl-host: cannot create a window with a GL 3.3 core "
            "context\n");
        glfwTerminate();
        return 1;
    }
    if (const char* missing = loadGlFunctions()) {
        std::fprintf(stderr, "osw-gl-host: GL function %s is missing\n", missing);
        glfwDestroyWindow(window);
        glfwTerminate();
        return 1;
    }
    std::fprintf(stderr, "osw-gl-host: GL %s on %s\n",
        reinterpret_cast<const char*>(glGetString(GL_VERSION)),
        reinterpret_cast<const char*>(glGetString(GL_RENDERER)));

    Run run(options, window);
    int exitCode = 0;
    std::string error;
    if (!run.scene.initialize(error)) {
        std::fprintf(stderr, "osw-gl-host: %s\n", error.c_str());
        exitCode = 1;
    }
    else if (options.noStream) {
        std::fprintf(stderr, "osw-gl-host: --no-stream: rendering only\n");
        protocol::ready(0);
    }
    else {
        std::fprintf(stderr, "osw-gl-host: rust-core %s, configuration %s\n",
            osw_version(), configJson.c_str());
        run.streamer = Streamer::create(configJson, error);
        if (!run.streamer) {
            std::fprintf(stderr, "osw-gl-host: osw_streamer_new: %s\n", error.c_str());
            exitCode = 1;
        }
        else {
            run.streamer->publishAppStatus(appStatusJson());
            protocol::ready(run.streamer->signalingPort());
        }
    }

    if (exitCode == 0 && options.toneEvery > 0) {
        run.tone = TonePlayer::create(options, run.streamer.get(), error);
        if (!run.tone) {
            std::fprintf(stderr, "osw-gl-host: --tone-out %s: %s\n", options.toneOut.c_str(),
                error.c_str());
            exitCode = 1;
        }
    }
    if (exitCode == 0) {
        exitCode = runFrames(run);
        protocol::frameCost(summarizeFrameCost(run.submitUs));
        if (options.selfTestStrip) {
            const bool ok = run.stripFailures == 0 && run.frames > 0;
            protocol::stripCheck(ok, run.frames, run.stripFailures);
            if (!ok && exitCode == 0) {
                exitCode = 1;
            }
        }
    }

    // The streamer deletes its GL objects: free it while the context is still current.
    glfwMakeContextCurrent(window);
    run.streamer.reset();
    run.scene.deinitialize();
    run.offscreen.deinitialize();
    glfwDestroyWindow(window);
    glfwTerminate();
    return exitCode;
}
