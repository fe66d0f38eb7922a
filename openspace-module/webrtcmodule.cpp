/*****************************************************************************************
 *                                                                                       *
 * OpenSpace                                                                             *
 *                                                                                       *
 * Copyright (c) 2014-2026                                                               *
 *                                                                                       *
 * Permission is hereby granted, free of charge, to any person obtaining a copy of this  *
 * software and associated documentation files (the "Software"), to deal in the Software *
 * without restriction, including without limitation the rights to use, copy, modify,    *
 * merge, publish, distribute, sublicense, and/or sell copies of the Software, and to    *
 * permit persons to whom the Software is furnished to do so, subject to the following   *
 * conditions:                                                                           *
 *                                                                                       *
 * The above copyright notice and this permission notice shall be included in all copies *
 * or substantial portions of the Software.                                              *
 *                                                                                       *
 * THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,   *
 * INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A         *
 * PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT    *
 * HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF  *
 * CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE  *
 * OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.                                         *
 ****************************************************************************************/

#include <modules/webrtc/webrtcmodule.h>

#include <modules/webrtc/include/backbufferread.h>
#include <openspace/documentation/documentation.h>
#include <openspace/engine/globals.h>
#include <openspace/engine/globalscallbacks.h>
#include <openspace/engine/openspaceengine.h>
#include <openspace/engine/windowdelegate.h>
#include <openspace/json.h>
#include <openspace/scripting/lualibrary.h>
#include <openspace/util/keys.h>
#include <openspace/util/mouse.h>
#include <ghoul/format.h>
#include <ghoul/glm.h>
#include <ghoul/logging/logmanager.h>
#include <ghoul/misc/dictionary.h>
#include <ghoul/misc/profiling.h>
#include <openspace_webrtc.h>
#ifdef OPENSPACE_WEBRTC_HAS_GLFW
#ifdef __clang__
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdocumentation"
#pragma clang diagnostic ignored "-Wdocumentation-unknown-command"
#pragma clang diagnostic ignored "-Wdocumentation-deprecated-sync"
#endif // __clang__
#define GLFW_INCLUDE_NONE
#include <GLFW/glfw3.h>
#ifdef __clang__
#pragma clang diagnostic pop
#endif // __clang__
#endif // OPENSPACE_WEBRTC_HAS_GLFW
#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "webrtcmodule_lua.inl"

namespace {
    constexpr std::string_view _loggerCat = "WebRtcModule";

    // Events handled per drain at most, so that a flood of input cannot stall a frame;
    // whatever is left waits for the next drain
    constexpr int MaxEventsPerDrain = 1024;

    // GLFW's modifier bits that OpenSpace knows: shift, control, alt, super
    constexpr int KnownModifierBits = 0x0F;

    // Set by the SIGTERM handler, read on the main thread: the only thing a signal
    // handler may safely do is write a sig_atomic_t
    volatile std::sig_atomic_t TerminationRequested = 0;

    void onTerminationSignal(int) {
        TerminationRequested = 1;
        // A second SIGTERM ends the process at once, as it would have without the module
        std::signal(SIGTERM, SIG_DFL);
    }

    // The orchestrator stops an instance with SIGTERM (SIGKILL after its stop timeout).
    // Without a handler SIGTERM kills OpenSpace on the spot: no module is deinitialized,
    // no viewer is told, the log ends mid-line. With it, the next frame asks SGCT to end
    // the render loop, and OpenSpace shuts down the way its own quit does. A handler
    // someone else installed is left alone
    void handleTerminationSignal() {
        using Handler = void (*)(int);
        const Handler previous = std::signal(SIGTERM, &onTerminationSignal);
        if (previous != SIG_DFL && previous != SIG_ERR) {
            std::signal(SIGTERM, previous);
        }
    }

    long long millisecondsSince(std::chrono::steady_clock::time_point start) {
        using namespace std::chrono;
        return duration_cast<milliseconds>(steady_clock::now() - start).count();
    }

    constexpr openspace::Property::PropertyInfo EnabledInfo = {
        "Enabled",
        "Enabled",
        "Streams the rendering of the first window to web browsers over WebRTC while "
        "enabled. Disabling it disconnects every viewer and closes the signaling "
        "endpoint.",
        openspace::Property::Visibility::AdvancedUser
    };

    // Streams OpenSpace's rendering to web browsers over WebRTC and brings the viewers'
    // mouse and keyboard back. Every setting except `Enabled` is handed to the streaming
    // library (rust-core), whose `OSW_*` environment variables win over the values given
    // here; for example `OSW_LISTEN_PORT` overrides `SignalingPort`.
    struct [[codegen::Dictionary(WebRtcModule)]] Parameters {
        // Whether to stream from the start. The environment variable `OSW_ENABLED`,
        // where it is set to 1 or 0, wins over this value. Defaults to false.
        std::optional<bool> enabled;

        // The address the signaling endpoint (a WebSocket) binds to. Defaults to
        // 127.0.0.1, which is where the orchestrator's proxy expects it.
        std::optional<std::string> signalingAddress [[codegen::notempty()]];

        // The port of the signaling endpoint; 0 picks a free port. Defaults to 4700.
        std::optional<int> signalingPort [[codegen::inrange(0, 65535)]];

        // The video encoder: `auto` picks the best one present (NVENC, then x264,
        // OpenH264, VP8). Defaults to `auto`.
        std::optional<std::string> encoder [[codegen::inlist("auto", "nvh264", "x264",
            "openh264", "vp8")]];

        // The target bitrate of the video in kbit/s. Defaults to 8000.
        std::optional<int> bitrateKbps [[codegen::inrange(100, 200000)]];

        // The most frames per second sent to the viewers; frames rendered faster are
        // skipped. Defaults to 60.
        std::optional<int> fpsCap [[codegen::inrange(1, 240)]];

        // The number of viewers served at once; more are refused. Defaults to 8.
        std::optional<int> maxViewers [[codegen::inrange(1, 64)]];

        // The STUN server, as `stun://host:port`. Defaults to none.
        std::optional<std::string> stunServer;

        // The TURN servers, each as `turn://user:password@host:port` (or `turns://`).
        // Defaults to none.
        std::optional<std::vector<std::string>> turnServers;

        // How frames leave the GPU: `gl` copies them on the GPU into a GL context shared
        // with GStreamer, `readback` reads them back asynchronously into system memory.
        // Defaults to `readback`.
        std::optional<std::string> captureMode [[codegen::inlist("gl", "readback")]];

        // A folder of navigation states (`.navstate` files, as
        // `openspace.navigation.saveNavigationState` writes them): each is a view the
        // owner's page can fly to, named by its file name without the extension.
        // Defaults to none.
        std::optional<std::filesystem::path> viewsFolder [[codegen::directory()]];
    };
} // namespace
#include "webrtcmodule_codegen.cpp"

namespace {
    using namespace openspace;

    // rust-core resolves the GL functions it needs through the host's loader; OpenSpace's
    // is `glfwGetProcAddress` behind the window delegate
    const void* glProcAddress(void*, const char* name) {
        return reinterpret_cast<const void*>(
            global::windowDelegate->openGLProcedureAddress(name)
        );
    }

    std::string lastError() {
        const size_t size = osw_last_error(nullptr, 0);
        if (size <= 1) {
            return "no details";
        }
        std::string message(size, '\0');
        osw_last_error(message.data(), message.size());
        message.resize(size - 1);
        return message;
    }

    std::string statsJson(const osw_streamer* streamer) {
        std::string buffer(1024, '\0');
        size_t size = 0;
        osw_result res =
            osw_streamer_stats_json(streamer, buffer.data(), buffer.size(), &size);
        if (res == OSW_RESULT_BUFFER_TOO_SMALL) {
            buffer.resize(size);
            res = osw_streamer_stats_json(streamer, buffer.data(), buffer.size(), &size);
        }
        if (res != OSW_RESULT_OK || size == 0) {
            return "";
        }
        buffer.resize(size - 1);
        return buffer;
    }

    // The streaming flag of the orchestrator: `OSW_ENABLED=1` turns streaming on, `0`
    // turns it off, anything else (or nothing) leaves the configuration's choice
    std::optional<bool> enabledFromEnvironment() {
        const char* value = std::getenv("OSW_ENABLED");
        if (!value) {
            return std::nullopt;
        }
        const std::string_view v = value;
        if (v == "1" || v == "true" || v == "on" || v == "yes") {
            return true;
        }
        if (v == "0" || v == "false" || v == "off" || v == "no" || v.empty()) {
            return false;
        }
        LWARNING(std::format("Ignoring OSW_ENABLED='{}': expected 1 or 0", v));
        return std::nullopt;
    }

    // rust-core's configuration JSON: only the settings that were given, so that
    // rust-core's own defaults apply to the others
    std::string configurationJson(const Parameters& p) {
        nlohmann::json json = nlohmann::json::object();
        if (p.signalingAddress.has_value()) {
            json["listenAddress"] = *p.signalingAddress;
        }
        if (p.signalingPort.has_value()) {
            json["listenPort"] = *p.signalingPort;
        }
        if (p.encoder.has_value()) {
            json["encoder"] = *p.encoder;
        }
        if (p.bitrateKbps.has_value()) {
            json["bitrateKbps"] = *p.bitrateKbps;
        }
        if (p.fpsCap.has_value()) {
            json["fpsCap"] = *p.fpsCap;
        }
        if (p.maxViewers.has_value()) {
            json["maxViewers"] = *p.maxViewers;
        }
        if (p.stunServer.has_value()) {
            json["stunServer"] = *p.stunServer;
        }
        if (p.turnServers.has_value()) {
            json["turnServers"] = *p.turnServers;
        }
        if (p.captureMode.has_value()) {
            json["capture"] = *p.captureMode;
        }
        return json.dump();
    }

    // GLFW's mouse buttons 1 to 7 are OpenSpace's; GLFW's 8th (7) is OpenSpace's Button8,
    // which OpenSpace numbers 8
    std::optional<MouseButton> mouseButton(int button) {
        if (button >= 0 && button <= 6) {
            return static_cast<MouseButton>(button);
        }
        if (button == 7) {
            return MouseButton::Button8;
        }
        return std::nullopt;
    }

    // The viewer's pointer is in pixels of the video as displayed (`width` x `height`);
    // OpenSpace expects the first window's screen coordinates, as GLFW reports them
    void movePointer(const osw_event& event, IsGuiWindow isGuiWindow) {
        if (event.width == 0 || event.height == 0) {
            return;
        }
        const glm::ivec2 size = global::windowDelegate->firstWindowResolution();
        const double x = event.x * static_cast<double>(size.x) / event.width;
        const double y = event.y * static_cast<double>(size.y) / event.height;
        global::openSpaceEngine->mousePositionCallback(x, y, isGuiWindow);
    }
} // namespace

namespace openspace {

Documentation WebRtcModule::Documentation() {
    return codegen::doc<Parameters>("module_webrtc");
}

WebRtcModule::WebRtcModule()
    : OpenSpaceModule(Name)
    , _enabled(EnabledInfo, false)
{
    addProperty(_enabled);
}

void WebRtcModule::internalInitialize(const ghoul::Dictionary& configuration) {
    const Parameters p = codegen::bake<Parameters>(configuration);

    _enabled = p.enabled.value_or(_enabled);
    const std::optional<bool> fromEnvironment = enabledFromEnvironment();
    if (fromEnvironment.has_value()) {
        _enabled = *fromEnvironment;
    }
    _configJson = configurationJson(p);
    _appChannel = AppChannel(p.viewsFolder.value_or(std::filesystem::path()));

    // The configuration itself is not logged: TURN server URLs carry credentials
    LINFO(std::format(
        "rust-core {}; streaming is {}", osw_version(), _enabled ? "on" : "off"
    ));

    handleTerminationSignal();

    global::callback::preSync->emplace_back([this]() {
        ZoneScopedN("WebRtcModule::preSync");
        handlePreSync();
    });

    global::callback::postDraw->emplace_back([this]() {
        ZoneScopedN("WebRtcModule::postDraw");
        handlePostDraw();
    });
}

void WebRtcModule::internalDeinitializeGL() {
    // rust-core deletes its GL objects when freed, so this has to happen while OpenSpace
    // still has a GL context current
    destroyStreamer();
}

void WebRtcModule::start() {
    _enabled = true;
}

void WebRtcModule::stop() {
    _enabled = false;
}

ghoul::Dictionary WebRtcModule::status() const {
    ghoul::Dictionary res;
    res.setValue("running", _streamer != nullptr);
    res.setValue("viewers", 0);
    res.setValue("fps", 0.0);
    res.setValue("encoder", std::string());
    res.setValue("bitrate", 0.0);
    res.setValue("signalingPort", 0);
    res.setValue("width", 0);
    res.setValue("height", 0);
    res.setValue("framesIn", 0.0);
    res.setValue("inputEvents", 0.0);
    res.setValue("postDrawMedianMs", _postDrawCost.quantileMs(0.5));
    res.setValue("postDrawP99Ms", _postDrawCost.quantileMs(0.99));
    res.setValue("postDrawFrames", static_cast<int>(_postDrawCost.count()));
    // OpenSpace's own frame rate, streaming or not, to compare with and without viewers
    const double deltaTime = global::windowDelegate->averageDeltaTime();
    res.setValue("renderFps", deltaTime > 0.0 ? 1.0 / deltaTime : 0.0);
    if (!_streamer) {
        return res;
    }

    const int port = static_cast<int>(osw_streamer_signaling_port(_streamer));
    res.setValue("signalingPort", port);
    const nlohmann::json stats =
        nlohmann::json::parse(statsJson(_streamer), nullptr, false);
    if (stats.is_discarded() || !stats.is_object()) {
        LWARNING("rust-core returned stats that are not a JSON object");
        return res;
    }
    try {
        res.setValue("viewers", stats.value("viewers", 0));
        res.setValue("fps", stats.value("fpsOut", 0.0));
        res.setValue("encoder", stats.value("encoder", std::string()));
        res.setValue("bitrate", stats.value("bitrateKbps", 0.0));
        res.setValue("width", stats.value("width", 0));
        res.setValue("height", stats.value("height", 0));
        // Counters as doubles: Lua numbers, and a Dictionary has no 64-bit integers
        res.setValue("framesIn", stats.value("framesIn", 0.0));
        res.setValue("inputEvents", stats.value("inputEvents", 0.0));
    }
    catch (const nlohmann::json::exception& e) {
        LWARNING(std::format("Unexpected stats from rust-core: {}", e.what()));
    }
    return res;
}

void WebRtcModule::handlePostDraw() {
    // Only the master streams; SGCT made window 0's context current for postDraw
    if (!global::windowDelegate->isMaster()) {
        return;
    }
    if (!_enabled) {
        destroyStreamer();
        return;
    }
    if (!_streamer && !createStreamer()) {
        return;
    }

    const auto start = std::chrono::steady_clock::now();
    submitFrame();

    // Input that arrived while this frame was rendered reaches the camera update of the
    // next frame this way, one frame earlier than if it waited for the next preSync
    drainEvents();
    _postDrawCost.add(std::chrono::steady_clock::now() - start);
}

void WebRtcModule::handlePreSync() {
    const bool isMaster = global::windowDelegate->isMaster();
    if (TerminationRequested != 0 && !_isTerminating && isMaster) {
        LINFO("SIGTERM received: shutting down");
        _isTerminating = true;
        global::windowDelegate->terminate();
    }
    if (_streamer && isMaster) {
        drainEvents();
    }
}

bool WebRtcModule::createStreamer() {
#ifdef OPENSPACE_WEBRTC_HAS_GLFW
    // SGCT makes its shared context current for postDraw: the context of window 0
    _window = glfwGetCurrentContext();
#endif // OPENSPACE_WEBRTC_HAS_GLFW

    osw_streamer* streamer = nullptr;
    const auto start = std::chrono::steady_clock::now();
    const osw_result res =
        osw_streamer_new(_configJson.c_str(), &glProcAddress, nullptr, &streamer);
    if (res != OSW_RESULT_OK) {
        LERROR(std::format(
            "Could not start streaming: {}: {}", osw_result_text(res), lastError()
        ));
        // Stay off until someone enables streaming again instead of retrying each frame
        _enabled = false;
        _window = nullptr;
        return false;
    }

    _streamer = streamer;
    _appChannel.attach(_streamer);
    _lastSubmitResult = OSW_RESULT_OK;
    updateFramebufferSize();
    // The render loop waits for this once per start; the log says how long
    LINFO(std::format(
        "Streaming; signaling endpoint on port {} (started in {} ms)",
        osw_streamer_signaling_port(_streamer), millisecondsSince(start)
    ));
    return true;
}

void WebRtcModule::destroyStreamer() {
    if (!_streamer) {
        return;
    }
    const auto start = std::chrono::steady_clock::now();
    _appChannel.detach();
    osw_streamer_free(_streamer);
    _streamer = nullptr;
    _window = nullptr;
    _pendingResize.reset();
    _postDrawCost.clear();
    LINFO(std::format("Stopped streaming (in {} ms)", millisecondsSince(start)));
}

void WebRtcModule::submitFrame() {
    ZoneScoped;

#ifdef OPENSPACE_WEBRTC_HAS_GLFW
    if (global::windowDelegate->anyWindowHasResized()) {
        updateFramebufferSize();
    }
#else // ^^^^ OPENSPACE_WEBRTC_HAS_GLFW // !OPENSPACE_WEBRTC_HAS_GLFW vvvv
    updateFramebufferSize();
#endif // OPENSPACE_WEBRTC_HAS_GLFW
    if (_framebufferWidth == 0 || _framebufferHeight == 0) {
        return;
    }

    // The finished frame is in window 0's back buffer: SGCT copied its FBO there and
    // swaps after postDraw. rust-core reads the bound read framebuffer
    osw_result res = OSW_RESULT_OK;
    {
        const BackBufferRead backBuffer;
        res = osw_streamer_submit_framebuffer(
            _streamer,
            _framebufferWidth,
            _framebufferHeight
        );
    }

    // A dropped frame is rust-core's back pressure, not a failure
    const osw_result shown = res == OSW_RESULT_FRAME_DROPPED ? OSW_RESULT_OK : res;
    if (shown != _lastSubmitResult) {
        if (shown == OSW_RESULT_OK) {
            LINFO("Frames reach the stream again");
        }
        else {
            LERROR(std::format(
                "Could not hand a frame to the stream: {}: {}",
                osw_result_text(shown), lastError()
            ));
        }
        _lastSubmitResult = shown;
    }
}

void WebRtcModule::updateFramebufferSize() {
    glm::ivec2 size = glm::ivec2(0);
#ifdef OPENSPACE_WEBRTC_HAS_GLFW
    if (_window) {
        glfwGetFramebufferSize(static_cast<GLFWwindow*>(_window), &size.x, &size.y);
    }
    else {
        size = global::windowDelegate->currentDrawBufferResolution();
    }
#else // ^^^^ OPENSPACE_WEBRTC_HAS_GLFW // !OPENSPACE_WEBRTC_HAS_GLFW vvvv
    size = global::windowDelegate->currentDrawBufferResolution();
#endif // OPENSPACE_WEBRTC_HAS_GLFW
    _framebufferWidth = static_cast<std::uint32_t>(std::max(size.x, 0));
    _framebufferHeight = static_cast<std::uint32_t>(std::max(size.y, 0));
}

void WebRtcModule::drainEvents() {
    ZoneScoped;

    osw_event event = {};
    for (int i = 0; i < MaxEventsPerDrain; i++) {
        if (!osw_streamer_poll_event(_streamer, &event)) {
            break;
        }
        handleEvent(event);
    }

    _appChannel.drain();

    // A viewer dragging its browser window sends many sizes; only the latest counts
    if (_pendingResize.has_value()) {
        resizeWindow(_pendingResize->first, _pendingResize->second);
        _pendingResize.reset();
    }
}

void WebRtcModule::handleEvent(const osw_event& event) {
    // The viewer sees window 0. SGCT's main.cpp treats window 0 as the GUI window when
    // no window carries the GUI tag, so the in-window GUIs (ImGui, CefWebGui) follow the
    // viewer's input the way they would follow a local mouse and keyboard
    const IsGuiWindow isGuiWindow = IsGuiWindow(!global::windowDelegate->hasGuiWindow());
    const KeyModifier mods = static_cast<KeyModifier>(event.mods & KnownModifierBits);

    switch (event.kind) {
        case OSW_EVENT_KIND_NONE:
            break;
        case OSW_EVENT_KIND_POINTER_MOVE:
            movePointer(event, isGuiWindow);
            break;
        case OSW_EVENT_KIND_POINTER_BUTTON:
        {
            const std::optional<MouseButton> button = mouseButton(event.button);
            if (!button.has_value()) {
                break;
            }
            movePointer(event, isGuiWindow);
            const MouseAction action =
                event.action == 0 ? MouseAction::Release : MouseAction::Press;
            global::openSpaceEngine->mouseButtonCallback(
                *button,
                action,
                mods,
                isGuiWindow
            );
            break;
        }
        case OSW_EVENT_KIND_WHEEL:
            global::openSpaceEngine->mouseScrollWheelCallback(
                event.x,
                event.y,
                isGuiWindow
            );
            break;
        case OSW_EVENT_KIND_KEY:
        {
            // openspace::Key holds GLFW's key codes, from Space (32) to Menu (348)
            const bool isKnownKey = event.key >= static_cast<int>(Key::Space) &&
                event.key <= static_cast<int>(Key::Last);
            if (!isKnownKey || event.action < 0 || event.action > 2) {
                break;
            }
            global::openSpaceEngine->keyboardCallback(
                static_cast<Key>(event.key),
                mods,
                static_cast<KeyAction>(event.action),
                isGuiWindow
            );
            break;
        }
        case OSW_EVENT_KIND_TEXT:
            if (event.codepoint != 0) {
                global::openSpaceEngine->charCallback(event.codepoint, mods, isGuiWindow);
            }
            break;
        case OSW_EVENT_KIND_RESIZE:
            _pendingResize = std::pair(event.width, event.height);
            break;
        case OSW_EVENT_KIND_VIEWER_JOINED:
            LINFO(std::format("Viewer {} joined", event.viewer_id));
            break;
        case OSW_EVENT_KIND_VIEWER_LEFT:
            LINFO(std::format("Viewer {} left", event.viewer_id));
            break;
        case OSW_EVENT_KIND_CONTROLS_CHANGED:
            if (event.viewer_id == 0) {
                LINFO("Nobody has the controls");
            }
            else {
                LINFO(std::format("Viewer {} has the controls", event.viewer_id));
            }
            break;
    }
}

void WebRtcModule::resizeWindow(std::uint32_t width, std::uint32_t height) {
#ifdef OPENSPACE_WEBRTC_HAS_GLFW
    GLFWwindow* window = static_cast<GLFWwindow*>(_window);
    if (!window || width == 0 || height == 0) {
        return;
    }
    if (glfwGetWindowMonitor(window)) {
        LWARNING(std::format(
            "Ignoring the request for {}x{}: the first window is fullscreen",
            width, height
        ));
        return;
    }

    // Viewers ask for framebuffer pixels, GLFW sizes windows in screen coordinates; the
    // two differ on high-DPI displays
    glm::ivec2 windowSize = glm::ivec2(0);
    glfwGetWindowSize(window, &windowSize.x, &windowSize.y);
    glm::ivec2 framebufferSize = glm::ivec2(0);
    glfwGetFramebufferSize(window, &framebufferSize.x, &framebufferSize.y);
    if (framebufferSize == glm::ivec2(width, height)) {
        return;
    }
    glm::dvec2 scale = glm::dvec2(1.0);
    if (glm::all(glm::greaterThan(windowSize, glm::ivec2(0))) &&
        glm::all(glm::greaterThan(framebufferSize, glm::ivec2(0))))
    {
        scale = glm::dvec2(framebufferSize) / glm::dvec2(windowSize);
    }
    const int w = std::max(1, static_cast<int>(std::lround(width / scale.x)));
    const int h = std::max(1, static_cast<int>(std::lround(height / scale.y)));

    LINFO(std::format("Resizing the first window to {}x{} for the stream", w, h));
    // SGCT's size callbacks pick this up and resize its buffers after the frame; the
    // frames handed over follow in `submitFrame`
    glfwSetWindowSize(window, w, h);
#else // ^^^^ OPENSPACE_WEBRTC_HAS_GLFW // !OPENSPACE_WEBRTC_HAS_GLFW vvvv
    if (!_hasWarnedAboutResize) {
        LWARNING(std::format(
            "Ignoring the request for {}x{}: this build has no GLFW to resize windows",
            width, height
        ));
        _hasWarnedAboutResize = true;
    }
#endif // OPENSPACE_WEBRTC_HAS_GLFW
}

std::vector<Documentation> WebRtcModule::documentations() const {
    // The module's own Documentation() is registered through the module registration;
    // listing it here as well would register the id 'module_webrtc' twice, which the
    // DocumentationEngine refuses
    return {};
}

LuaLibrary WebRtcModule::luaLibrary() const {
    return {
        "webrtc",
        {
            codegen::lua::Status,
            codegen::lua::Start,
            codegen::lua::Stop
        }
    };
}

} // namespace openspace
