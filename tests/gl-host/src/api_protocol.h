/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___API_PROTOCOL___H__
#define __OSW_GL_HOST___API_PROTOCOL___H__

// The part of OpenSpace's JSON API (its `server` module, modules/server/src/connection.cpp
// and topics/luascripttopic.cpp) that the stand-in speaks: the envelope
// `{"topic": <integer>, "type": "<topic type>", "payload": {...}}` and the `luascript` topic
// with a `script`. It runs no Lua: a script that asks for its return values gets a fixed
// stand-in value in OpenSpace's return shape, `{"payload": {"1": <value>}, "topic": <id>}`
// (OpenSpace puts a script's return values under "1", "2", ...; nlohmann::json writes the
// keys sorted, so "payload" comes first). Pure: no sockets, no output.

#include <optional>
#include <string>
#include <string_view>

namespace glhost::api {

// What the stand-in does with one text message of a client.
struct Handled {
    // The text to send back, if any. Like OpenSpace, there is none for a script that does
    // not ask for its return values, nor for a message it cannot make sense of.
    std::optional<std::string> answer;
    // The script the message asked to run, if it was a `luascript` call.
    std::optional<std::string> script;
    // Why a message got no answer although it was no valid call, for the host's stderr
    // (OpenSpace logs these too).
    std::string problem;
    // Close the connection after the answer (OpenSpace disconnects a client that skipped
    // the handshake).
    bool close = false;
};

// What the stand-in knows of one connection.
struct Connection {
    // Whether the client sent `{"type": "apiHandshake", "apiVersion": {...}}` first, as
    // OpenSpace (v0.22) demands of every connection before any topic
    bool handshaken = false;
};

// Handles one message of `connection`. A first message that is not the handshake is
// refused the way OpenSpace refuses it: the connection is closed (`close`).
Handled handleMessage(std::string_view message, Connection& connection);

// The stand-in's return value for `script`: deterministic, and it names the script, so a
// test can tell that its own call got through unchanged.
std::string standInResult(std::string_view script);

// `text` on one line: control characters written as `\n`, `\r`, `\t` or `\xNN`, everything
// else as it is. For the `api: ran <script>` stdout line.
std::string oneLine(std::string_view text);

} // namespace glhost::api

#endif // __OSW_GL_HOST___API_PROTOCOL___H__
