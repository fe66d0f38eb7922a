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

#include <modules/webrtc/include/appchannel.h>

#include <openspace/engine/globals.h>
#include <openspace/json.h>
#include <openspace/scripting/scriptengine.h>
#include <ghoul/format.h>
#include <ghoul/logging/logmanager.h>
#include <ghoul/misc/dictionary.h>
#include <ghoul/misc/dictionaryjsonformatter.h>
#include <openspace_webrtc.h>
#include <string_view>
#include <vector>

namespace {
    constexpr std::string_view _loggerCat = "WebRtcModule";

    // rust-core caps a script or view name at 16 KiB; one more byte for the NUL
    constexpr size_t TextCapacity = 16 * 1024 + 1;

    // Requests taken per drain at most; the rest wait for the next frame
    constexpr int MaxRequestsPerDrain = 16;

    // How long the camera flies to a view
    constexpr double ViewFlightSeconds = 3.0;

    // A Lua string literal of `text` (long brackets cannot hold every text; this can)
    std::string luaQuoted(const std::string& text) {
        std::string quoted = "\"";
        for (const char c : text) {
            switch (c) {
                case '\\': quoted += "\\\\"; break;
                case '"': quoted += "\\\""; break;
                case '\n': quoted += "\\n"; break;
                case '\r': quoted += "\\r"; break;
                // Three digits: a digit after it must not extend the escape
                case '\0': quoted += "\\000"; break;
                default: quoted += c; break;
            }
        }
        return quoted + "\"";
    }

    // The first value a script returned, as text for the page
    std::string resultText(const ghoul::Dictionary& result, std::string_view key) {
        if (result.hasValue<std::string>(key)) {
            return result.value<std::string>(key);
        }
        if (result.hasValue<double>(key)) {
            return std::format("{}", result.value<double>(key));
        }
        if (result.hasValue<bool>(key)) {
            return result.value<bool>(key) ? "true" : "false";
        }
        if (result.hasValue<ghoul::Dictionary>(key)) {
            return ghoul::formatJson(result.value<ghoul::Dictionary>(key));
        }
        return "";
    }
} // namespace

namespace openspace {

AppChannel::AppChannel(std::filesystem::path viewsFolder)
    : _requestText(TextCapacity)
{
    if (viewsFolder.empty()) {
        return;
    }
    std::error_code error;
    for (const std::filesystem::directory_entry& entry :
         std::filesystem::directory_iterator(viewsFolder, error))
    {
        if (entry.is_regular_file() && entry.path().extension() == ".navstate") {
            _views[entry.path().stem().string()] = entry.path();
        }
    }
    if (error) {
        LWARNING(std::format(
            "Cannot read the views in '{}': {}", viewsFolder, error.message()
        ));
    }
    LINFO(std::format("{} view(s) in '{}'", _views.size(), viewsFolder));
}

void AppChannel::attach(osw_streamer* streamer) {
    _streamer = streamer;
    nlohmann::json status = {
        { "host", "OpenSpace" },
        { "views", viewNames() }
    };
    const std::string json = status.dump();
    if (osw_streamer_publish_app_status(_streamer, json.c_str()) != OSW_RESULT_OK) {
        LWARNING("rust-core refused the status with the views");
    }
}

void AppChannel::detach() {
    _streamer = nullptr;
}

std::vector<std::string> AppChannel::viewNames() const {
    std::vector<std::string> names;
    for (const auto& [name, path] : _views) {
        names.push_back(name);
    }
    return names;
}

void AppChannel::drain() {
    if (!_streamer) {
        return;
    }
    for (int i = 0; i < MaxRequestsPerDrain; i++) {
        osw_app_request request = {};
        size_t size = 0;
        const osw_result res = osw_streamer_poll_app_request(
            _streamer,
            &request,
            _requestText.data(),
            _requestText.size(),
            &size
        );
        if (res != OSW_RESULT_OK) {
            LWARNING(std::format(
                "Cannot take an app request: result {}", static_cast<int>(res)
            ));
            return;
        }
        const std::string body =
            size > 0 ? std::string(_requestText.data(), size - 1) : "";
        switch (request.kind) {
            case OSW_APP_REQUEST_KIND_NONE:
                return;
            case OSW_APP_REQUEST_KIND_RUN_SCRIPT:
                LINFO(std::format("Viewer {} runs a script", request.viewer_id));
                runScript(request.request_id, body);
                break;
            case OSW_APP_REQUEST_KIND_GO_TO_VIEW:
                LINFO(std::format("Viewer {} flies to '{}'", request.viewer_id, body));
                goToView(request.request_id, body);
                break;
            default:
                reply(request.request_id, false, "OpenSpace does not know that request");
                break;
        }
    }
}

void AppChannel::runScript(std::uint64_t requestId, const std::string& script) {
    queueAnswered(requestId, script);
}

void AppChannel::goToView(std::uint64_t requestId, const std::string& name) {
    const auto it = _views.find(name);
    if (it == _views.end()) {
        reply(requestId, false, std::format("no view named \"{}\"", name));
        return;
    }
    // A flight of a fixed length, so the audience sees where the camera goes. (OpenSpace
    // moves a path by at most 10 ms a frame below 10 fps: slower there, whatever we ask)
    queueAnswered(requestId, std::format(
        "openspace.navigation.flyToNavigationState("
        "openspace.navigation.loadNavigationStateFromFile({}), {})",
        luaQuoted(it->second.string()), ViewFlightSeconds
    ));
}

void AppChannel::queueAnswered(std::uint64_t requestId, const std::string& code) {
    // pcall turns a failing script into (false, message) instead of an entry in the log
    // only; a script that does not even load leaves the result empty
    ScriptEngine::Script script;
    script.code = std::format("return pcall(function()\n{}\nend)", code);
    script.callback = [this, requestId](ghoul::Dictionary result) {
        if (!result.hasValue<bool>("1")) {
            reply(requestId, false, "the script did not load (see OpenSpace's log)");
            return;
        }
        reply(requestId, result.value<bool>("1"), resultText(result, "2"));
    };
    global::scriptEngine->queueScript(std::move(script));
}

void AppChannel::reply(std::uint64_t requestId, bool ok, const std::string& message) {
    if (!_streamer) {
        // The stream was stopped while the script ran: nobody is waiting any more
        return;
    }
    const osw_result res = osw_streamer_reply_app_request(
        _streamer,
        requestId,
        ok,
        message.empty() ? nullptr : message.c_str()
    );
    if (res != OSW_RESULT_OK) {
        // Answered for us already (the 30 s timeout), or a request of an earlier stream
        LDEBUG(std::format(
            "App request {} was not answered: result {}", requestId, static_cast<int>(res)
        ));
    }
}

} // namespace openspace
