/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "websocket_frames.h"

#include <algorithm>

namespace glhost::ws {

namespace {

// The largest payload of a control frame (section 5.5).
constexpr size_t MaxControlPayload = 125;

void appendLength(std::string& frame, uint8_t maskBit, size_t length) {
    if (length < 126) {
        frame += static_cast<char>(maskBit | length);
    }
    else if (length <= 0xFFFF) {
        frame += static_cast<char>(maskBit | 126);
        frame += static_cast<char>(length >> 8);
        frame += static_cast<char>(length & 0xFF);
    }
    else {
        frame += static_cast<char>(maskBit | 127);
        for (int i = 7; i >= 0; --i) {
            frame += static_cast<char>((static_cast<uint64_t>(length) >> (i * 8)) & 0xFF);
        }
    }
}

bool isControl(Opcode opcode) {
    return (static_cast<uint8_t>(opcode) & 0x8) != 0;
}

bool isKnown(uint8_t opcode) {
    return opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xA);
}

} // namespace

std::string encodeFrame(Opcode opcode, std::string_view payload) {
    std::string frame;
    frame.reserve(payload.size() + 10);
    frame += static_cast<char>(0x80 | static_cast<uint8_t>(opcode));
    appendLength(frame, 0, payload.size());
    frame += payload;
    return frame;
}

std::string encodeMaskedFrame(Opcode opcode, std::string_view payload,
                              const std::array<uint8_t, 4>& mask, bool fin)
{
    std::string frame;
    frame.reserve(payload.size() + 14);
    frame += static_cast<char>((fin ? 0x80 : 0) | static_cast<uint8_t>(opcode));
    appendLength(frame, 0x80, payload.size());
    for (const uint8_t byte : mask) {
        frame += static_cast<char>(byte);
    }
    for (size_t i = 0; i < payload.size(); ++i) {
        frame += static_cast<char>(static_cast<uint8_t>(payload[i]) ^ mask[i % 4]);
    }
    return frame;
}

std::string closePayload(uint16_t code, std::string_view reason) {
    std::string payload;
    payload += static_cast<char>(code >> 8);
    payload += static_cast<char>(code & 0xFF);
    size_t length = std::min(reason.size(), MaxControlPayload - 2);
    // Back up to the start of a character: continuation bytes are 10xxxxxx.
    while (length > 0 && length < reason.size() &&
           (static_cast<uint8_t>(reason[length]) & 0xC0) == 0x80)
    {
        --length;
    }
    payload += reason.substr(0, length);
    return payload;
}

bool isValidUtf8(std::string_view text) {
    size_t i = 0;
    while (i < text.size()) {
        const uint8_t lead = static_cast<uint8_t>(text[i]);
        if (lead < 0x80) {
            ++i;
            continue;
        }
        int extra = 0;
        uint32_t value = 0;
        uint32_t minimum = 0;
        if ((lead & 0xE0) == 0xC0) {
            extra = 1;
            value = lead & 0x1F;
            minimum = 0x80;
        }
        else if ((lead & 0xF0) == 0xE0) {
            extra = 2;
            value = lead & 0x0F;
            minimum = 0x800;
        }
        else if ((lead & 0xF8) == 0xF0) {
            extra = 3;
            value = lead & 0x07;
            minimum = 0x10000;
        }
        else {
            return false;
        }
        if (i + extra >= text.size()) {
            return false; // the character is cut off
        }
        for (int k = 1; k <= extra; ++k) {
            const uint8_t next = static_cast<uint8_t>(text[i + k]);
            if ((next & 0xC0) != 0x80) {
                return false;
            }
            value = (value << 6) | (next & 0x3F);
        }
        if (value < minimum || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) {
            return false;
        }
        i += extra + 1;
    }
    return true;
}

MessageReader::MessageReader(size_t maxMessageBytes) : _maxMessageBytes(maxMessageBytes) {}

void MessageReader::append(std::string_view bytes) {
    if (!_failed) {
        _buffer += bytes;
    }
}

ReadEvent MessageReader::fail(uint16_t code, std::string reason) {
    _failed = true;
    _buffer.clear();
    _message.clear();
    _failure = ReadEvent();
    _failure.status = ReadStatus::Failed;
    _failure.closeCode = code;
    _failure.reason = std::move(reason);
    return _failure;
}

ReadEvent MessageReader::next() {
    while (true) {
        if (_failed) {
            return _failure;
        }
        if (_buffer.size() < 2) {
            return {};
        }
        const uint8_t b0 = static_cast<uint8_t>(_buffer[0]);
        const uint8_t b1 = static_cast<uint8_t>(_buffer[1]);
        const bool fin = (b0 & 0x80) != 0;
        if ((b0 & 0x70) != 0) {
            return fail(closecode::ProtocolError, "reserved bits set (no extension agreed)");
        }
        if (!isKnown(b0 & 0x0F)) {
            return fail(closecode::ProtocolError, "unknown opcode");
        }
        const Opcode opcode = static_cast<Opcode>(b0 & 0x0F);
        if ((b1 & 0x80) == 0) {
            return fail(closecode::ProtocolError, "client frames must be masked");
        }

        size_t header = 2;
        uint64_t length = b1 & 0x7F;
        if (length == 126 || length == 127) {
            const size_t bytes = length == 126 ? 2 : 8;
            if (_buffer.size() < header + bytes) {
                return {};
            }
            length = 0;
            for (size_t i = 0; i < bytes; ++i) {
                length = (length << 8) | static_cast<uint8_t>(_buffer[header + i]);
            }
            header += bytes;
            // Section 5.2: the most significant bit must be 0; and no shorter form fits.
            if ((length >> 63) != 0 || (bytes == 2 && length < 126) ||
                (bytes == 8 && length <= 0xFFFF))
            {
                return fail(closecode::ProtocolError, "malformed payload length");
            }
        }

        if (isControl(opcode)) {
            if (!fin || length > MaxControlPayload) {
                return fail(closecode::ProtocolError,
                    "control frames must be unfragmented and at most 125 bytes");
            }
        }
        else {
            if (opcode == Opcode::Continuation && !_fragmented) {
                return fail(closecode::ProtocolError, "continuation frame without a message");
            }
            if (opcode != Opcode::Continuation && _fragmented) {
                return fail(closecode::ProtocolError,
                    "new message before the fragmented one ended");
            }
            const uint64_t sofar = opcode == Opcode::Continuation ? _message.size() : 0;
            if (length > _maxMessageBytes || sofar + length > _maxMessageBytes) {
                return fail(closecode::TooBig,
                    "message too big (limit " + std::to_string(_maxMessageBytes) + " bytes)");
            }
        }

        const size_t total = header + 4 + static_cast<size_t>(length);
        if (_buffer.size() < total) {
            return {};
        }
        const uint8_t* mask = reinterpret_cast<const uint8_t*>(_buffer.data() + header);
        std::string payload(static_cast<size_t>(length), '\0');
        for (size_t i = 0; i < payload.size(); ++i) {
            payload[i] = static_cast<char>(
                static_cast<uint8_t>(_buffer[header + 4 + i]) ^ mask[i % 4]);
        }
        _buffer.erase(0, total);

        if (isControl(opcode)) {
            if (opcode == Opcode::Close && payload.size() == 1) {
                return fail(closecode::ProtocolError, "close frame with a one-byte payload");
            }
            ReadEvent event;
            event.status = ReadStatus::Control;
            event.opcode = opcode;
            event.payload = std::move(payload);
            return event;
        }

        if (opcode == Opcode::Continuation) {
            _message += payload;
        }
        else {
            _messageOpcode = opcode;
            _message = std::move(payload);
        }
        _fragmented = !fin;
        if (!fin) {
            continue;
        }
        if (_messageOpcode == Opcode::Text && !isValidUtf8(_message)) {
            return fail(closecode::InvalidPayload, "invalid UTF-8 in a text message");
        }
        ReadEvent event;
        event.status = ReadStatus::Message;
        event.opcode = _messageOpcode;
        event.payload = std::move(_message);
        _message.clear();
        return event;
    }
}

} // namespace glhost::ws
