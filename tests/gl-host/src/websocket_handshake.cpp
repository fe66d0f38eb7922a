/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "websocket_handshake.h"

#include <cctype>
#include <vector>

namespace glhost::ws {

namespace {

// RFC 6455, section 1.3: appended to the client's key before hashing.
constexpr std::string_view HandshakeGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

uint32_t rotateLeft(uint32_t value, int bits) {
    return (value << bits) | (value >> (32 - bits));
}

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
        text.remove_suffix(1);
    }
    return text;
}

// Whether a comma-separated header value holds `token` (compared case-insensitively), as
// `Connection: keep-alive, Upgrade` does.
bool hasToken(std::string_view value, std::string_view token) {
    while (!value.empty()) {
        const size_t comma = value.find(',');
        const std::string_view item = trim(value.substr(0, comma));
        if (lower(item) == lower(token)) {
            return true;
        }
        if (comma == value.npos) {
            break;
        }
        value.remove_prefix(comma + 1);
    }
    return false;
}

} // namespace

std::array<uint8_t, 20> sha1(std::string_view data) {
    uint32_t h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 };

    // The message, a 1 bit, zeros up to 56 mod 64 bytes, then the length in bits.
    std::vector<uint8_t> message(data.begin(), data.end());
    const uint64_t bits = static_cast<uint64_t>(data.size()) * 8;
    message.push_back(0x80);
    while (message.size() % 64 != 56) {
        message.push_back(0);
    }
    for (int i = 7; i >= 0; --i) {
        message.push_back(static_cast<uint8_t>(bits >> (i * 8)));
    }

    for (size_t chunk = 0; chunk < message.size(); chunk += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; ++i) {
            const uint8_t* p = &message[chunk + i * 4];
            w[i] = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) |
                   uint32_t(p[3]);
        }
        for (int i = 16; i < 80; ++i) {
            w[i] = rotateLeft(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; ++i) {
            uint32_t f = 0;
            uint32_t k = 0;
            if (i < 20) {
                f = (b & c) | (~b & d);
                k = 0x5A827999;
            }
            else if (i < 40) {
                f = b ^ c ^ d;
                k = 0x6ED9EBA1;
            }
            else if (i < 60) {
                f = (b & c) | (b & d) | (c & d);
                k = 0x8F1BBCDC;
            }
            else {
                f = b ^ c ^ d;
                k = 0xCA62C1D6;
            }
            const uint32_t next = rotateLeft(a, 5) + f + e + k + w[i];
            e = d;
            d = c;
            c = rotateLeft(b, 30);
            b = a;
            a = next;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
        h[4] += e;
    }

    std::array<uint8_t, 20> digest = {};
    for (int i = 0; i < 5; ++i) {
        for (int j = 0; j < 4; ++j) {
            digest[i * 4 + j] = static_cast<uint8_t>(h[i] >> (24 - j * 8));
        }
    }
    return digest;
}

std::string base64(const uint8_t* data, size_t size) {
    static constexpr char Alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((size + 2) / 3 * 4);
    for (size_t i = 0; i < size; i += 3) {
        const size_t left = size - i;
        const uint32_t group = (uint32_t(data[i]) << 16) |
                               (left > 1 ? uint32_t(data[i + 1]) << 8 : 0) |
                               (left > 2 ? uint32_t(data[i + 2]) : 0);
        out += Alphabet[(group >> 18) & 63];
        out += Alphabet[(group >> 12) & 63];
        out += left > 1 ? Alphabet[(group >> 6) & 63] : '=';
        out += left > 2 ? Alphabet[group & 63] : '=';
    }
    return out;
}

std::string acceptKey(std::string_view clientKey) {
    std::string input(clientKey);
    input += HandshakeGuid;
    const std::array<uint8_t, 20> digest = sha1(input);
    return base64(digest.data(), digest.size());
}

HeadResult parseRequestHead(std::string_view buffer) {
    HeadResult result;
    const size_t end = buffer.find("\r\n\r\n");
    if (end == buffer.npos) {
        if (buffer.size() > MaxRequestHeadBytes) {
            result.status = HeadStatus::Invalid;
            result.error = "request head too large";
        }
        return result;
    }
    result.headBytes = end + 4;
    result.status = HeadStatus::Invalid;
    if (result.headBytes > MaxRequestHeadBytes) {
        result.error = "request head too large";
        return result;
    }

    std::string_view head = buffer.substr(0, end);
    const size_t lineEnd = head.find("\r\n");
    const std::string_view requestLine = head.substr(0, lineEnd);
    head = lineEnd == head.npos ? std::string_view() : head.substr(lineEnd + 2);
    // "GET <target> HTTP/1.1": the target is not checked, as OpenSpace serves any path.
    const size_t firstSpace = requestLine.find(' ');
    const size_t lastSpace = requestLine.rfind(' ');
    if (firstSpace == requestLine.npos || firstSpace == lastSpace ||
        requestLine.substr(0, firstSpace) != "GET" ||
        requestLine.substr(lastSpace + 1) != "HTTP/1.1")
    {
        result.error = "expected a GET request over HTTP/1.1";
        return result;
    }

    bool upgrade = false;
    bool connection = false;
    bool version = false;
    std::string key;
    while (!head.empty()) {
        const size_t next = head.find("\r\n");
        const std::string_view line = head.substr(0, next);
        head = next == head.npos ? std::string_view() : head.substr(next + 2);
        const size_t colon = line.find(':');
        if (colon == line.npos) {
            result.error = "malformed header line";
            return result;
        }
        const std::string name = lower(trim(line.substr(0, colon)));
        const std::string_view value = trim(line.substr(colon + 1));
        if (name == "upgrade") {
            upgrade = upgrade || hasToken(value, "websocket");
        }
        else if (name == "connection") {
            connection = connection || hasToken(value, "upgrade");
        }
        else if (name == "sec-websocket-version") {
            version = value == "13";
        }
        else if (name == "sec-websocket-key") {
            key = std::string(value);
        }
    }
    if (!upgrade || !connection) {
        result.error = "not a WebSocket upgrade (Upgrade: websocket, Connection: Upgrade)";
        return result;
    }
    if (!version) {
        result.error = "unsupported WebSocket version (13 expected)";
        return result;
    }
    // The key is 16 random bytes in base64: always 24 characters.
    if (key.size() != 24) {
        result.error = "missing or malformed Sec-WebSocket-Key";
        return result;
    }
    result.status = HeadStatus::Upgrade;
    result.key = std::move(key);
    return result;
}

std::string switchingProtocolsResponse(std::string_view clientKey) {
    return "HTTP/1.1 101 Switching Protocols\r\n"
           "Upgrade: websocket\r\n"
           "Connection: Upgrade\r\n"
           "Sec-WebSocket-Accept: " + acceptKey(clientKey) + "\r\n\r\n";
}

std::string badRequestResponse(std::string_view reason) {
    const std::string body = std::string(reason) + "\n";
    return "HTTP/1.1 400 Bad Request\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n"
           "Content-Length: " + std::to_string(body.size()) + "\r\n"
           "Connection: close\r\n\r\n" + body;
}

} // namespace glhost::ws
