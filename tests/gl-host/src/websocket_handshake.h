/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___WEBSOCKET_HANDSHAKE___H__
#define __OSW_GL_HOST___WEBSOCKET_HANDSHAKE___H__

// The server side of the RFC 6455 opening handshake, for the stand-in of OpenSpace's JSON
// API (api_server.h): read the client's HTTP upgrade request, answer 101 with the
// Sec-WebSocket-Accept key. Pure functions, no sockets, so the unit tests can check them
// against the RFC's own example.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace glhost::ws {

// SHA-1 (FIPS 180-4) of `data`. Only the handshake uses it; it is no security measure.
std::array<uint8_t, 20> sha1(std::string_view data);

// Standard base64 with padding (RFC 4648, section 4).
std::string base64(const uint8_t* data, size_t size);

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (RFC 6455, section 4.2.2):
// base64(SHA-1(key + the RFC's GUID)).
std::string acceptKey(std::string_view clientKey);

// The longest request head accepted; a client that sends more without ending its head is
// refused, so a connection can never make the host buffer without bound.
constexpr size_t MaxRequestHeadBytes = 8192;

enum class HeadStatus {
    // No blank line yet: read more.
    Incomplete,
    // A valid upgrade request; `key` is set.
    Upgrade,
    // Anything else; `error` says why (the answer is 400).
    Invalid,
};

struct HeadResult {
    HeadStatus status = HeadStatus::Incomplete;
    // Bytes of the head, blank line included (with Upgrade: what to drop from the buffer).
    size_t headBytes = 0;
    std::string key;
    std::string error;
};

// Looks for a complete request head at the start of `buffer` and checks that it is a
// WebSocket upgrade: GET, HTTP/1.1, Upgrade: websocket, Connection: upgrade,
// Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key (names and tokens case-insensitive).
HeadResult parseRequestHead(std::string_view buffer);

// The 101 answer for a valid request with `clientKey`.
std::string switchingProtocolsResponse(std::string_view clientKey);

// A plain HTTP error answer that closes the connection, `reason` as its text body.
std::string badRequestResponse(std::string_view reason);

} // namespace glhost::ws

#endif // __OSW_GL_HOST___WEBSOCKET_HANDSHAKE___H__
