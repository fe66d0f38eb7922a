/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "app_requests.h"

#include "protocol.h"

#include <array>
#include <string_view>

namespace glhost {

namespace {

struct View {
    std::string_view name;
    float yaw;
    float pitch;
    float distance;
};

// Camera bookmarks, as OpenSpace keeps navigation states by name.
constexpr std::array<View, 3> Views = {{
    { "Home", 35.f, 25.f, 11.f },
    { "Above", 0.f, 85.f, 14.f },
    { "Side", 90.f, 0.f, 8.f },
}};

} // namespace

std::string appStatusJson() {
    std::string json = R"({"host":"osw-gl-host","views":[)";
    for (size_t i = 0; i < Views.size(); ++i) {
        json += (i == 0 ? "\"" : ",\"");
        json += Views[i].name;
        json += "\"";
    }
    json += "]}";
    return json;
}

bool handleAppRequests(Streamer& streamer, Camera& camera) {
    bool moved = false;
    osw_app_request request = {};
    std::string text;
    while (streamer.pollAppRequest(request, text)) {
        switch (request.kind) {
            case OSW_APP_REQUEST_KIND_RUN_SCRIPT:
                // The stand-in has no Lua; running a script means saying so, which is
                // what the tests check.
                protocol::appScript(request.viewer_id, text);
                streamer.replyAppRequest(request.request_id, true, "ran");
                break;
            case OSW_APP_REQUEST_KIND_GO_TO_VIEW: {
                const View* found = nullptr;
                for (const View& view : Views) {
                    if (view.name == text) {
                        found = &view;
                    }
                }
                if (!found) {
                    streamer.replyAppRequest(request.request_id, false,
                        "no view named \"" + text + "\"");
                    break;
                }
                moved |= camera.goTo(found->yaw, found->pitch, found->distance);
                protocol::appView(request.viewer_id, text);
                streamer.replyAppRequest(request.request_id, true, {});
                break;
            }
            case OSW_APP_REQUEST_KIND_NONE:
            default:
                streamer.replyAppRequest(request.request_id, false,
                    "this host does not know that request");
                break;
        }
    }
    return moved;
}

} // namespace glhost
