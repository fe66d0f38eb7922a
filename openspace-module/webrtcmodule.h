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

#ifndef __OPENSPACE_MODULE_WEBRTC___WEBRTCMODULE___H__
#define __OPENSPACE_MODULE_WEBRTC___WEBRTCMODULE___H__

#include <openspace/util/openspacemodule.h>

#include <modules/webrtc/include/appchannel.h>
#include <modules/webrtc/include/framecostmeter.h>
#include <openspace/properties/scalar/boolproperty.h>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

// Opaque types of rust-core's C ABI (rust-core/include/openspace_webrtc.h), declared here
// so that the C header stays out of OpenSpace's include graph
struct osw_streamer;
struct osw_event;

namespace ghoul { class Dictionary; }

namespace openspace {

/**
 * Streams the finished frames of window 0 to web browsers over WebRTC and feeds the
 * viewers' mouse and keyboard back into OpenSpace. Everything about streaming (capture,
 * encoding, peers, signaling) lives in rust-core behind its C ABI; this module only hands
 * over each frame in `postDraw` and drains rust-core's input queue on the main thread.
 */
class WebRtcModule : public OpenSpaceModule {
public:
    static constexpr const char* Name = "WebRtc";

    WebRtcModule();

    /**
     * Returns the state of the stream: whether it is running, the number of viewers, the
     * frames per second sent, the encoder, the measured bitrate in kbit/s, the size of
     * the frames handed over, and what the module's `postDraw` work costs (median and
     * 99th percentile of the last frames) beside OpenSpace's own frame rate.
     */
    ghoul::Dictionary status() const;

    /// Starts streaming at the next frame (the same as setting the `Enabled` property)
    void start();

    /// Stops streaming at the next frame and disconnects every viewer
    void stop();

    std::vector<openspace::Documentation> documentations() const override;
    LuaLibrary luaLibrary() const override;
    static openspace::Documentation Documentation();

protected:
    void internalInitialize(const ghoul::Dictionary& configuration) override;
    void internalDeinitializeGL() override;

private:
    /// Master only: creates or frees the streamer, hands over the frame, drains input
    void handlePostDraw();
    /// Master only: drains the input queue before the frame is synchronized
    void handlePreSync();

    bool createStreamer();
    void destroyStreamer();
    void submitFrame();
    void drainEvents();
    void handleEvent(const osw_event& event);
    void resizeWindow(std::uint32_t width, std::uint32_t height);
    void updateFramebufferSize();

    BoolProperty _enabled;

    /// rust-core's configuration, built from `ModuleConfigurations.WebRtc`
    std::string _configJson = "{}";
    osw_streamer* _streamer = nullptr;

    /// The GLFWwindow* of window 0, captured when the streamer is created
    void* _window = nullptr;
    /// Size of window 0's default framebuffer in pixels, refreshed on resize
    std::uint32_t _framebufferWidth = 0;
    std::uint32_t _framebufferHeight = 0;
    /// The last resize request of a drain; only the latest one is applied
    std::optional<std::pair<std::uint32_t, std::uint32_t>> _pendingResize;
    /// The result of the last frame hand-off, so that a failure is logged only once
    std::uint32_t _lastSubmitResult = 0;
    bool _hasWarnedAboutResize = false;
    /// SIGTERM was seen and SGCT was asked to end the render loop
    bool _isTerminating = false;
    /// Duration of the module's work in each `postDraw` while streaming
    FrameCostMeter _postDrawCost;
    /// The owners' scripts and views from the `app` channel
    AppChannel _appChannel;
};

} // namespace openspace

#endif // __OPENSPACE_MODULE_WEBRTC___WEBRTCMODULE___H__
