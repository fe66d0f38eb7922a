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

#include <openspace/engine/globals.h>
#include <openspace/engine/moduleengine.h>
#include <ghoul/lua/lua_helper.h>
#include <ghoul/misc/dictionary.h>

namespace {

using namespace openspace;

/**
 * Returns the state of the WebRTC stream as a table with the keys `running` (whether the
 * stream is on), `viewers` (the number of connected browsers), `fps` (the frames per
 * second sent to the viewers), `encoder` (the GStreamer encoder in use), `bitrate` (the
 * measured bitrate of the video in kbit/s), `signalingPort` (the port of the signaling
 * endpoint), `width` and `height` (the size of the frames handed to the stream),
 * `framesIn` (frames handed over), `inputEvents` (viewer input events accepted),
 * `postDrawMedianMs`, `postDrawP99Ms` and `postDrawFrames` (what the module's work in
 * `postDraw` cost over the last frames) and `renderFps` (OpenSpace's own frame rate).
 * While the stream is off, the stream's numbers are 0 and `encoder` is empty.
 */
[[codegen::luawrap]] ghoul::Dictionary status() {
    const WebRtcModule* module = global::moduleEngine->module<WebRtcModule>();
    return module->status();
}

/**
 * Starts streaming to web browsers over WebRTC at the next frame, with the settings of
 * `ModuleConfigurations.WebRtc`. This is the same as enabling the `Enabled` property of
 * the WebRtc module.
 */
[[codegen::luawrap]] void start() {
    WebRtcModule* module = global::moduleEngine->module<WebRtcModule>();
    module->start();
}

/**
 * Stops streaming at the next frame: every viewer is disconnected and the signaling
 * endpoint closes. This is the same as disabling the `Enabled` property of the WebRtc
 * module.
 */
[[codegen::luawrap]] void stop() {
    WebRtcModule* module = global::moduleEngine->module<WebRtcModule>();
    module->stop();
}

} // namespace

#include "webrtcmodule_lua_codegen.cpp"
