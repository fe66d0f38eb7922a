/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "api_protocol.h"

#include "json_members.h"

#include <cstdio>
#include <vector>

namespace glhost::api {

namespace {

// OpenSpace's topic ids are size_t; JSON integers beyond 2^53 lose precision in browsers
// anyway, so the stand-in takes plain non-negative integers of up to 15 digits.
bool isTopicId(std::string_view text) {
    if (text.empty() || text.size() > 15) {
        return false;
    }
    for (const char c : text) {
        if (c < '0' || c > '9') {
            return false;
        }
    }
    // JSON allows no leading zeros.
    return text.size() == 1 || text[0] != '0';
}

const std::string* member(const std::vector<json::Member>& members, std::string_view key) {
    for (const json::Member& m : members) {
        if (m.first == key) {
            return &m.second;
        }
    }
    return nullptr;
}

// OpenSpace's error envelope (Topic::wrappedError), keys in nlohmann::json's sorted order.
std::string errorAnswer(std::string_view topic, int code, std::string_view message) {
    return "{\"code\":" + std::to_string(code) + ",\"message\":" + json::quote(message) +
           ",\"status\":\"error\",\"topic\":" + std::string(topic) + "}";
}

Handled ignored(std::string problem) {
    Handled handled;
    handled.problem = std::move(problem);
    return handled;
}

Handled luaScript(std::string_view topic, const std::vector<json::Member>& payload) {
    const std::string* script = member(payload, "script");
    std::string text;
    if (script == nullptr || !json::unquote(*script, text)) {
        Handled handled;
        if (member(payload, "function") != nullptr) {
            // OpenSpace would build `return f(args...)` from `function` and `arguments`;
            // the stand-in has no Lua to call, so it says so instead of pretending.
            handled.answer = errorAnswer(topic, 501,
                "the GL test host's stand-in for OpenSpace runs only payload.script, not "
                "payload.function");
        }
        handled.problem = "luascript payload without a string \"script\"";
        return handled;
    }
    Handled handled;
    handled.script = text;
    const std::string* wantsReturn = member(payload, "return");
    if (wantsReturn != nullptr && *wantsReturn == "true") {
        handled.answer = "{\"payload\":{\"1\":" + json::quote(standInResult(text)) +
                         "},\"topic\":" + std::string(topic) + "}";
    }
    return handled;
}

} // namespace

std::string standInResult(std::string_view script) {
    return "osw-gl-host ran: " + std::string(script);
}

std::string oneLine(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        const unsigned char u = static_cast<unsigned char>(c);
        if (c == '\n') {
            out += "\\n";
        }
        else if (c == '\r') {
            out += "\\r";
        }
        else if (c == '\t') {
            out += "\\t";
        }
        else if (u < 0x20 || u == 0x7F) {
            char escaped[8];
            std::snprintf(escaped, sizeof(escaped), "\\x%02x", u);
            out += escaped;
        }
        else {
            out += c;
        }
    }
    return out;
}

Handled handleMessage(std::string_view message, Connection& connection) {
    std::vector<json::Member> envelope;
    std::string error;
    if (!json::splitObject(message, envelope, error)) {
        return ignored("not a JSON object: " + error);
    }
    if (!connection.handshaken) {
        const std::string* typeText = member(envelope, "type");
        std::string type;
        if (typeText != nullptr && json::unquote(*typeText, type) && type == "apiHandshake" &&
            member(envelope, "apiVersion") != nullptr)
        {
            connection.handshaken = true;
            return Handled();
        }
        Handled handled = ignored("Unsupported API version: the first message must be the "
            "apiHandshake; closing the connection as OpenSpace does");
        handled.close = true;
        return handled;
    }
    const std::string* topic = member(envelope, "topic");
    if (topic == nullptr || !isTopicId(*topic)) {
        return ignored("topic must be an integer");
    }
    const std::string* payloadText = member(envelope, "payload");
    std::vector<json::Member> payload;
    if (payloadText == nullptr || !json::splitObject(*payloadText, payload, error)) {
        return ignored("payload must be an object");
    }
    const std::string* typeText = member(envelope, "type");
    std::string type;
    if (typeText == nullptr || !json::unquote(*typeText, type)) {
        // OpenSpace would pass the payload on to an open topic of that id; the stand-in
        // keeps none open (a luascript topic is done once it has answered).
        return ignored("type must be specified as a string when a new topic is initialized");
    }
    if (type == "luascript") {
        return luaScript(*topic, payload);
    }
    Handled handled;
    handled.answer = errorAnswer(*topic, 404,
        "the GL test host's stand-in for OpenSpace's JSON API knows only \"luascript\", "
        "not \"" + type + "\"");
    handled.problem = "topic type \"" + type + "\" is not part of the stand-in";
    return handled;
}

} // namespace glhost::api
