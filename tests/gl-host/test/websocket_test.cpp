/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

// The RFC 6455 parts of the JSON API stand-in: the handshake's accept key (the RFC's own
// example), SHA-1 and base64 against their standards' test vectors, request heads, and
// frames both ways, including the RFC's section 5.7 examples.

#include "check.h"
#include "websocket_frames.h"
#include "websocket_handshake.h"

#include <string>
#include <vector>

using namespace glhost;

namespace {

std::string hex(const std::array<uint8_t, 20>& digest) {
    static constexpr char Digits[] = "0123456789abcdef";
    std::string out;
    for (const uint8_t b : digest) {
        out += Digits[b >> 4];
        out += Digits[b & 15];
    }
    return out;
}

std::string bytes(std::initializer_list<int> values) {
    std::string out;
    for (const int v : values) {
        out += static_cast<char>(v);
    }
    return out;
}

std::string base64Of(std::string_view text) {
    return ws::base64(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

// RFC 6455 section 1.3's example request.
const std::string ExampleRequest =
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

const std::array<uint8_t, 4> Mask = { 0x37, 0xfa, 0x21, 0x3d };

// Feeds `input` to a fresh reader and returns its first event.
ws::ReadEvent firstEvent(const std::string& input, size_t limit = 1024) {
    ws::MessageReader reader(limit);
    reader.append(input);
    return reader.next();
}

} // namespace

int main() {
    // SHA-1: FIPS 180 examples (one block, two blocks) and two more.
    CHECK(hex(ws::sha1("abc")) == "a9993e364706816aba3e25717850c26c9cd0d89d");
    CHECK(hex(ws::sha1("")) == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    CHECK(hex(ws::sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
          "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    CHECK(hex(ws::sha1("The quick brown fox jumps over the lazy dog")) ==
          "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12");
    CHECK(hex(ws::sha1(std::string(1000000, 'a'))) ==
          "34aa973cd4c4daa4f61eeb2bdbad27316534016f");

    // base64: RFC 4648 section 10.
    CHECK(base64Of("") == "");
    CHECK(base64Of("f") == "Zg==");
    CHECK(base64Of("fo") == "Zm8=");
    CHECK(base64Of("foo") == "Zm9v");
    CHECK(base64Of("foob") == "Zm9vYg==");
    CHECK(base64Of("fooba") == "Zm9vYmE=");
    CHECK(base64Of("foobar") == "Zm9vYmFy");

    // The accept key: RFC 6455 section 1.3.
    CHECK(ws::acceptKey("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    // Request heads.
    {
        const ws::HeadResult r = ws::parseRequestHead(ExampleRequest + "\x81");
        CHECK(r.status == ws::HeadStatus::Upgrade);
        CHECK(r.key == "dGhlIHNhbXBsZSBub25jZQ==");
        CHECK(r.headBytes == ExampleRequest.size());
        const std::string answer = ws::switchingProtocolsResponse(r.key);
        CHECK(answer.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
        CHECK(answer.find("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") !=
              std::string::npos);
        CHECK(answer.size() >= 4 && answer.substr(answer.size() - 4) == "\r\n\r\n");
    }
    CHECK(ws::parseRequestHead(ExampleRequest.substr(0, 40)).status ==
          ws::HeadStatus::Incomplete);
    // Names and tokens are case-insensitive; Connection may list other tokens.
    CHECK(ws::parseRequestHead("GET / HTTP/1.1\r\nupgrade: WebSocket\r\n"
                               "CONNECTION: keep-alive, Upgrade\r\n"
                               "sec-websocket-version: 13\r\n"
                               "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
              .status == ws::HeadStatus::Upgrade);
    for (const std::string& bad : std::vector<std::string>{
             "POST / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
             "GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
             "GET / HTTP/1.1\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
             "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
             "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n",
             "GET / HTTP/1.1\r\nUpgrade: websocket\r\nbroken line\r\n\r\n",
             "GET / HTTP/1.1\r\n" + std::string(ws::MaxRequestHeadBytes, 'x'),
         })
    {
        const ws::HeadResult r = ws::parseRequestHead(bad);
        CHECK(r.status == ws::HeadStatus::Invalid && !r.error.empty());
    }
    CHECK(ws::badRequestResponse("no").rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);

    // Server frames: RFC 6455 section 5.7, and the three length forms.
    CHECK(ws::encodeFrame(ws::Opcode::Text, "Hello") ==
          bytes({ 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f }));
    CHECK(ws::encodeFrame(ws::Opcode::Pong, "Hello") ==
          bytes({ 0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f }));
    CHECK(ws::encodeFrame(ws::Opcode::Binary, std::string(256, 'x')).substr(0, 4) ==
          bytes({ 0x82, 0x7e, 0x01, 0x00 }));
    CHECK(ws::encodeFrame(ws::Opcode::Binary, std::string(65536, 'x')).substr(0, 10) ==
          bytes({ 0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0 }));
    CHECK(ws::encodeFrame(ws::Opcode::Text, std::string(125, 'x')).size() == 127);
    CHECK(ws::encodeFrame(ws::Opcode::Text, std::string(65535, 'x')).size() == 65539);
    // Client frames: the masked "Hello" of section 5.7.
    CHECK(ws::encodeMaskedFrame(ws::Opcode::Text, "Hello", Mask) ==
          bytes({ 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 }));

    // Close payloads: code first, the reason cut to fit, never inside a character.
    CHECK(ws::closePayload(1001, "bye") == bytes({ 0x03, 0xe9, 'b', 'y', 'e' }));
    CHECK(ws::closePayload(1000, std::string(200, 'x')).size() == 125);
    {
        // 61 two-byte characters = 122 bytes, then "é" would straddle byte 125.
        std::string reason(1, 'a');
        for (int i = 0; i < 80; ++i) {
            reason += "\xc3\xa9";
        }
        const std::string payload = ws::closePayload(1000, reason);
        CHECK(payload.size() <= 125 && ws::isValidUtf8(payload.substr(2)));
    }

    // UTF-8.
    CHECK(ws::isValidUtf8("plain") && ws::isValidUtf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    for (const char* bad : { "\xc3", "\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                             "\xe2\x82", "\xff" })
    {
        CHECK(!ws::isValidUtf8(bad));
    }

    // Reading client frames: the masked "Hello", also fed one byte at a time.
    {
        const std::string hello = ws::encodeMaskedFrame(ws::Opcode::Text, "Hello", Mask);
        const ws::ReadEvent e = firstEvent(hello);
        CHECK(e.status == ws::ReadStatus::Message && e.opcode == ws::Opcode::Text &&
              e.payload == "Hello");
        ws::MessageReader reader(1024);
        int messages = 0;
        for (const char c : hello + hello) {
            reader.append(std::string_view(&c, 1));
            for (ws::ReadEvent ev = reader.next(); ev.status != ws::ReadStatus::NeedMore;
                 ev = reader.next())
            {
                CHECK(ev.status == ws::ReadStatus::Message && ev.payload == "Hello");
                ++messages;
            }
        }
        CHECK(messages == 2);
    }
    // Fragments joined, with a ping between them (control frames may interleave).
    {
        ws::MessageReader reader(1024);
        reader.append(ws::encodeMaskedFrame(ws::Opcode::Text, "Hel", Mask, false));
        reader.append(ws::encodeMaskedFrame(ws::Opcode::Ping, "p", Mask));
        reader.append(ws::encodeMaskedFrame(ws::Opcode::Continuation, "l", Mask, false));
        reader.append(ws::encodeMaskedFrame(ws::Opcode::Continuation, "o", Mask));
        const ws::ReadEvent ping = reader.next();
        CHECK(ping.status == ws::ReadStatus::Control && ping.opcode == ws::Opcode::Ping &&
              ping.payload == "p");
        const ws::ReadEvent message = reader.next();
        CHECK(message.status == ws::ReadStatus::Message && message.payload == "Hello");
        CHECK(reader.next().status == ws::ReadStatus::NeedMore);
    }
    // Longer payloads in both extended length forms.
    for (const size_t size : { size_t(126), size_t(70000) }) {
        const std::string payload(size, 'z');
        const ws::ReadEvent e =
            firstEvent(ws::encodeMaskedFrame(ws::Opcode::Binary, payload, Mask), 100000);
        CHECK(e.status == ws::ReadStatus::Message && e.opcode == ws::Opcode::Binary &&
              e.payload == payload);
    }
    // A close frame comes out as a control event.
    {
        const ws::ReadEvent e = firstEvent(
            ws::encodeMaskedFrame(ws::Opcode::Close, ws::closePayload(1000, "done"), Mask));
        CHECK(e.status == ws::ReadStatus::Control && e.opcode == ws::Opcode::Close &&
              e.payload.size() == 6);
    }

    // Protocol violations, each with its close code.
    {
        auto failsWith = [](const std::string& input, uint16_t code, size_t limit = 1024) {
            const ws::ReadEvent e = firstEvent(input, limit);
            return e.status == ws::ReadStatus::Failed && e.closeCode == code &&
                   !e.reason.empty();
        };
        // Unmasked client frame.
        CHECK(failsWith(ws::encodeFrame(ws::Opcode::Text, "Hello"), 1002));
        // Reserved bit.
        std::string rsv = ws::encodeMaskedFrame(ws::Opcode::Text, "x", Mask);
        rsv[0] = static_cast<char>(rsv[0] | 0x40);
        CHECK(failsWith(rsv, 1002));
        // Unknown opcode 3.
        std::string unknown = ws::encodeMaskedFrame(ws::Opcode::Text, "x", Mask);
        unknown[0] = static_cast<char>(0x83);
        CHECK(failsWith(unknown, 1002));
        // A continuation with nothing to continue, a new message inside a fragmented one.
        CHECK(failsWith(ws::encodeMaskedFrame(ws::Opcode::Continuation, "x", Mask), 1002));
        CHECK(failsWith(ws::encodeMaskedFrame(ws::Opcode::Text, "a", Mask, false) +
                        ws::encodeMaskedFrame(ws::Opcode::Text, "b", Mask), 1002));
        // Control frames: fragmented, or over 125 bytes; a one-byte close payload.
        CHECK(failsWith(ws::encodeMaskedFrame(ws::Opcode::Ping, "x", Mask, false), 1002));
        CHECK(failsWith(ws::encodeMaskedFrame(ws::Opcode::Ping, std::string(126, 'x'), Mask),
                        1002));
        CHECK(failsWith(ws::encodeMaskedFrame(ws::Opcode::Close, "x", Mask), 1002));
        // Invalid UTF-8 in a text message; binary may hold anything.
        CHECK(failsWith(ws::encodeMaskedFrame(ws::Opcode::Text, "\xc3(", Mask), 1007));
        CHECK(firstEvent(ws::encodeMaskedFrame(ws::Opcode::Binary, "\xc3(", Mask)).status ==
              ws::ReadStatus::Message);
        // Too big: refused from the header alone, before the payload arrives.
        const std::string big = ws::encodeMaskedFrame(ws::Opcode::Text, std::string(2000, 'x'),
                                                      Mask);
        CHECK(failsWith(big.substr(0, 8), 1009));
        // Too big across fragments.
        CHECK(failsWith(ws::encodeMaskedFrame(ws::Opcode::Text, std::string(600, 'x'), Mask,
                                              false) +
                        ws::encodeMaskedFrame(ws::Opcode::Continuation,
                                              std::string(600, 'x'), Mask), 1009));
        // A 16-bit length that would have fit in 7 bits.
        CHECK(failsWith(bytes({ 0x81, 0xfe, 0x00, 0x05, 0x37, 0xfa, 0x21, 0x3d }), 1002));
    }
    // After a failure the reader stays failed.
    {
        ws::MessageReader reader(1024);
        reader.append(ws::encodeFrame(ws::Opcode::Text, "unmasked"));
        CHECK(reader.next().status == ws::ReadStatus::Failed);
        reader.append(ws::encodeMaskedFrame(ws::Opcode::Text, "fine", Mask));
        CHECK(reader.next().status == ws::ReadStatus::Failed);
    }

    return CHECK_RESULT();
}
