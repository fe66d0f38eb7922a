/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

// The JSON API stand-in's answers: OpenSpace's envelope and return shape for `luascript`,
// no answer where OpenSpace sends none, an error envelope for what the stand-in does not
// do; and the JSON string decoding it relies on.

#include "api_protocol.h"
#include "check.h"
#include "json_members.h"

#include <string>
#include <string_view>

using namespace glhost;

namespace {

// One message on a connection that did the handshake.
api::Handled call(std::string_view message) {
    api::Connection connection;
    connection.handshaken = true;
    return api::handleMessage(message, connection);
}

} // namespace

int main() {
    // OpenSpace's rule: the first message is the API handshake, or the connection closes.
    {
        api::Connection connection;
        const api::Handled first = api::handleMessage(
            R"x({"type":"apiHandshake","apiVersion":{"major":1,"minor":0,"patch":0}})x",
            connection);
        CHECK(connection.handshaken && !first.answer && !first.close);
        const api::Handled then = api::handleMessage(
            R"x({"topic":1,"type":"luascript","payload":{"script":"x","return":true}})x",
            connection);
        CHECK(then.answer && !then.close);
    }
    {
        api::Connection connection;
        const api::Handled skipped = api::handleMessage(
            R"x({"topic":1,"type":"luascript","payload":{"script":"x","return":true}})x",
            connection);
        CHECK(skipped.close && !skipped.answer && !skipped.script);
        CHECK(!connection.handshaken);
    }
    // A script that asks for its return values: OpenSpace's shape, keys sorted.
    {
        const api::Handled h = call(
            R"x({"topic": 7, "type": "luascript", "payload": {"script": "return 1 + 1", "return": true}})x");
        CHECK(h.script == std::string("return 1 + 1"));
        CHECK(h.answer ==
              std::string(R"x({"payload":{"1":"osw-gl-host ran: return 1 + 1"},"topic":7})x"));
        CHECK(h.problem.empty());
    }
    // Without "return": true the script runs and nothing is answered, as in OpenSpace.
    for (const char* message : {
             R"x({"topic":1,"type":"luascript","payload":{"script":"openspace.time.setPause(true)"}})x",
             R"x({"topic":1,"type":"luascript","payload":{"script":"openspace.time.setPause(true)","return":false}})x",
             R"x({"topic":1,"type":"luascript","payload":{"script":"openspace.time.setPause(true)","return":"yes"}})x" })
    {
        const api::Handled h = call(message);
        CHECK(h.script == std::string("openspace.time.setPause(true)"));
        CHECK(!h.answer);
    }
    // Escapes are decoded for the script and written again in the answer.
    {
        const api::Handled h = call(
            R"x({"payload":{"return":true,"script":"return \"caf\u00e9\"\n-- \ud83d\ude00"},"type":"luascript","topic":0})x");
        CHECK(h.script == std::string("return \"caf\xc3\xa9\"\n-- \xf0\x9f\x98\x80"));
        CHECK(h.answer == std::string(
            "{\"payload\":{\"1\":\"osw-gl-host ran: return \\\"caf\xc3\xa9\\\"\\n-- "
            "\xf0\x9f\x98\x80\"},\"topic\":0}"));
    }
    // Other topic types: OpenSpace's error envelope, with the topic to match it by.
    {
        const api::Handled h =
            call(R"x({"topic":3,"type":"get","payload":{"property":"x"}})x");
        CHECK(!h.script);
        CHECK(h.answer && h.answer->rfind(R"x({"code":404,"message":")x", 0) == 0);
        CHECK(h.answer && h.answer->find(R"x(not \"get\"","status":"error","topic":3})x") !=
                              std::string::npos);
    }
    // The function form needs Lua to format its arguments: said, not faked.
    {
        const api::Handled h = call(
            R"x({"topic":4,"type":"luascript","payload":{"function":"openspace.time.setPause","arguments":[true]}})x");
        CHECK(!h.script);
        CHECK(h.answer && h.answer->rfind(R"x({"code":501,)x", 0) == 0);
    }
    // Messages OpenSpace cannot use get no answer either: only a note for the log.
    for (const char* message : {
             "not json", "[]", R"x({"type":"luascript","payload":{"script":"x"}})x",
             R"x({"topic":"1","type":"luascript","payload":{"script":"x"}})x",
             R"x({"topic":1.5,"type":"luascript","payload":{"script":"x"}})x",
             R"x({"topic":-1,"type":"luascript","payload":{"script":"x"}})x",
             R"x({"topic":01,"type":"luascript","payload":{"script":"x"}})x",
             R"x({"topic":1,"type":"luascript","payload":"script"})x",
             R"x({"topic":1,"type":"luascript"})x", R"x({"topic":1,"payload":{"script":"x"}})x",
             R"x({"topic":1,"type":7,"payload":{"script":"x"}})x",
             R"x({"topic":1,"type":"luascript","payload":{"script":7,"return":true}})x" })
    {
        const api::Handled h = call(message);
        CHECK(!h.answer && !h.script && !h.problem.empty());
    }

    // The stdout line: one line whatever the script holds.
    CHECK(api::oneLine("a\nb\tc\r\x01\x7f\"é\"") == "a\\nb\\tc\\r\\x01\\x7f\"é\"");

    // JSON string literals.
    {
        std::string out;
        CHECK(json::unquote(R"x("plain")x", out) && out == "plain");
        CHECK(json::unquote(R"x("")x", out) && out.empty());
        CHECK(json::unquote(R"x("\"\\\/\b\f\n\r\t")x", out) && out == "\"\\/\b\f\n\r\t");
        CHECK(json::unquote(R"x("\u0041\u00e9\u20ac\ud83d\ude00")x", out) &&
              out == "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
        for (const char* bad : { "", "\"", "plain", R"x("a"b")x", R"x("\x")x", R"x("\u12")x",
                                 R"x("\ud83d")x", R"x("\ude00")x", R"x("\ud83d\u0041")x", "\"a\nb\"",
                                 R"x("ends in \")x" })
        {
            CHECK(!json::unquote(bad, out));
        }
        // quote and unquote round trip.
        const std::string text = "line\none \"quoted\" \\ \x01";
        CHECK(json::unquote(json::quote(text), out) && out == text);
    }

    return CHECK_RESULT();
}
