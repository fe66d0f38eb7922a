/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___WEBSOCKET_FRAMES___H__
#define __OSW_GL_HOST___WEBSOCKET_FRAMES___H__

// RFC 6455 framing for the server side of the OpenSpace JSON API stand-in: server frames
// out (unmasked), client frames in (masked, possibly fragmented, control frames between
// the fragments). Pure: the socket code in api_server.cpp feeds bytes in and writes what
// comes out.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace glhost::ws {

enum class Opcode : uint8_t {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
};

// The close codes the server sends (RFC 6455, section 7.4.1).
namespace closecode {
constexpr uint16_t Normal = 1000;
constexpr uint16_t GoingAway = 1001;
constexpr uint16_t ProtocolError = 1002;
constexpr uint16_t UnsupportedData = 1003;
constexpr uint16_t InvalidPayload = 1007;
constexpr uint16_t TooBig = 1009;
} // namespace closecode

// One unfragmented server frame: FIN set, not masked (servers never mask, section 5.1).
std::string encodeFrame(Opcode opcode, std::string_view payload);

// One client frame, masked with `mask` (section 5.3), as a browser sends it. The host
// itself never sends these; the unit tests and test clients do.
std::string encodeMaskedFrame(Opcode opcode, std::string_view payload,
                              const std::array<uint8_t, 4>& mask, bool fin = true);

// A close frame's payload: the code in network order, then as much of `reason` as fits in
// a control frame's 125 bytes (cut at a UTF-8 character boundary).
std::string closePayload(uint16_t code, std::string_view reason);

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or values past
// U+10FFFF), which a text message must be (section 8.1).
bool isValidUtf8(std::string_view text);

enum class ReadStatus {
    // Nothing complete yet: append more bytes.
    NeedMore,
    // A whole text or binary message (fragments joined).
    Message,
    // A close, ping or pong frame.
    Control,
    // The client broke the protocol: close with `closeCode` and `reason`, read no more.
    Failed,
};

struct ReadEvent {
    ReadStatus status = ReadStatus::NeedMore;
    Opcode opcode = Opcode::Continuation;
    std::string payload;
    uint16_t closeCode = 0;
    std::string reason;
};

// Turns what a client sends after the handshake into messages and control frames. It
// unmasks, joins fragments, lets control frames through between them, and checks the
// rules of section 5: frames masked, reserved bits clear, known opcodes, control frames
// unfragmented and at most 125 bytes, continuations only inside a fragmented message,
// text valid UTF-8. A message longer than `maxMessageBytes` fails with 1009 as soon as its
// length is known, before its payload is buffered.
class MessageReader {
public:
    explicit MessageReader(size_t maxMessageBytes);

    void append(std::string_view bytes);

    // The next event. Call until it returns NeedMore (or Failed, which it then keeps
    // returning).
    ReadEvent next();

private:
    ReadEvent fail(uint16_t code, std::string reason);

    size_t _maxMessageBytes;
    std::string _buffer;
    // A fragmented message under way: its opcode and the payload so far.
    bool _fragmented = false;
    Opcode _messageOpcode = Opcode::Text;
    std::string _message;
    bool _failed = false;
    ReadEvent _failure;
};

} // namespace glhost::ws

#endif // __OSW_GL_HOST___WEBSOCKET_FRAMES___H__
