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

#ifndef __OPENSPACE_MODULE_WEBRTC___APPCHANNEL___H__
#define __OPENSPACE_MODULE_WEBRTC___APPCHANNEL___H__

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

struct osw_streamer;

namespace openspace {

/**
 * The owners' requests from rust-core's `app` data channel, carried out by OpenSpace: a
 * script is queued in the script engine, a view is a navigation state (a `.navstate`
 * file, as `openspace.navigation.saveNavigationState` writes them) that the camera flies
 * to. Each request is answered when the script engine reports its result, with the error
 * text when the script failed. The names of the views are published as the status the
 * pages show.
 */
class AppChannel {
public:
    /// Reads the views, the `.navstate` files in `viewsFolder` (none if it is empty)
    explicit AppChannel(std::filesystem::path viewsFolder = {});

    /// Answers go to `streamer` from now on; publishes the status (the views) to it
    void attach(osw_streamer* streamer);

    /// The streamer is about to be freed: answers still to come go nowhere
    void detach();

    /// Takes the requests waiting in the attached streamer and queues them
    void drain();

    /// The names of the views, in alphabetical order
    std::vector<std::string> viewNames() const;

private:
    void runScript(std::uint64_t requestId, const std::string& script);
    void goToView(std::uint64_t requestId, const std::string& name);
    void reply(std::uint64_t requestId, bool ok, const std::string& message);

    /// Queues `code` so that its result (or error) answers `requestId`
    void queueAnswered(std::uint64_t requestId, const std::string& code);

    std::map<std::string, std::filesystem::path> _views;
    osw_streamer* _streamer = nullptr;
    /// Where rust-core writes a request's text; sized once, drained twice a frame
    std::vector<char> _requestText;
};

} // namespace openspace

#endif // __OPENSPACE_MODULE_WEBRTC___APPCHANNEL___H__
