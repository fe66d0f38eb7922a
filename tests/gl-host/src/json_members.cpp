/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "json_members.h"

#include <cstdint>
#include <cstdio>

namespace glhost::json {

namespace {

// A cursor over the text with the error it stopped at.
struct Scanner {
    std::string_view text;
    size_t pos = 0;
    std::string error;

    bool fail(const std::string& what) {
        error = what + " at offset " + std::to_string(pos);
        return false;
    }

    void skipSpace() {
        while (pos < text.size() &&
               (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n' ||
                text[pos] == '\r'))
        {
            ++pos;
        }
    }

    bool atEnd() const { return pos >= text.size(); }

    // A string literal starting at `pos`; leaves `pos` after its closing quote.
    bool skipString() {
        if (atEnd() || text[pos] != '"') {
            return fail("expected '\"'");
        }
        for (++pos; pos < text.size(); ++pos) {
            const char c = text[pos];
            if (c == '\\') {
                ++pos; // the escaped character, whatever it is
            }
            else if (c == '"') {
                ++pos;
                return true;
            }
            else if (static_cast<unsigned char>(c) < 0x20) {
                return fail("control character in a string");
            }
        }
        return fail("unterminated string");
    }

    // One value of any kind; nested objects and arrays are skipped by bracket depth.
    bool skipValue() {
        skipSpace();
        if (atEnd()) {
            return fail("expected a value");
        }
        const char first = text[pos];
        if (first == '"') {
            return skipString();
        }
        if (first == '{' || first == '[') {
            std::string closers;
            while (!atEnd()) {
                const char c = text[pos];
                if (c == '"') {
                    if (!skipString()) {
                        return false;
                    }
                    continue;
                }
                if (c == '{') {
                    closers.push_back('}');
                }
                else if (c == '[') {
                    closers.push_back(']');
                }
                else if (c == '}' || c == ']') {
                    if (closers.empty() || closers.back() != c) {
                        return fail(std::string("unexpected '") + c + "'");
                    }
                    closers.pop_back();
                    if (closers.empty()) {
                        ++pos;
                        return true;
                    }
                }
                ++pos;
            }
            return fail("unterminated object or array");
        }
        // A number or a literal (true, false, null): a run of plain characters.
        const size_t start = pos;
        while (!atEnd()) {
            const char c = text[pos];
            const bool plain = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                               c == '-' || c == '+' || c == '.' || c == 'E';
            if (!plain) {
                break;
            }
            ++pos;
        }
        return pos > start ? true : fail("expected a value");
    }
};

} // namespace

bool splitObject(std::string_view text, std::vector<Member>& members,
                 std::string& error)
{
    members.clear();
    Scanner s;
    s.text = text;
    s.skipSpace();
    if (s.atEnd() || s.text[s.pos] != '{') {
        error = "expected a JSON object ('{...}')";
        return false;
    }
    ++s.pos;
    bool first = true;
    while (true) {
        s.skipSpace();
        if (s.atEnd()) {
            s.fail("unterminated object");
            error = s.error;
            return false;
        }
        if (s.text[s.pos] == '}') {
            // A '}' straight after ',' never gets here: the key's skipString refuses it.
            ++s.pos;
            break;
        }
        if (!first) {
            if (s.text[s.pos] != ',') {
                s.fail("expected ',' or '}'");
                error = s.error;
                return false;
            }
            ++s.pos;
            s.skipSpace();
        }
        const size_t keyStart = s.pos;
        if (!s.skipString()) {
            error = s.error;
            return false;
        }
        std::string key(text.substr(keyStart + 1, s.pos - keyStart - 2));
        s.skipSpace();
        if (s.atEnd() || s.text[s.pos] != ':') {
            s.fail("expected ':'");
            error = s.error;
            return false;
        }
        ++s.pos;
        s.skipSpace();
        const size_t valueStart = s.pos;
        if (!s.skipValue()) {
            error = s.error;
            return false;
        }
        members.emplace_back(std::move(key),
                             std::string(text.substr(valueStart, s.pos - valueStart)));
        first = false;
    }
    s.skipSpace();
    if (!s.atEnd()) {
        s.fail("text after the object");
        error = s.error;
        return false;
    }
    return true;
}

std::vector<Member> merge(std::vector<Member> base,
                          const std::vector<Member>& overrides)
{
    for (const Member& o : overrides) {
        bool replaced = false;
        for (Member& b : base) {
            if (b.first == o.first) {
                b.second = o.second;
                replaced = true;
            }
        }
        if (!replaced) {
            base.push_back(o);
        }
    }
    return base;
}

std::string writeObject(const std::vector<Member>& members) {
    std::string out = "{";
    for (size_t i = 0; i < members.size(); ++i) {
        if (i > 0) {
            out += ',';
        }
        out += '"';
        out += members[i].first;
        out += "\":";
        out += members[i].second;
    }
    out += '}';
    return out;
}

std::string quote(std::string_view value) {
    std::string out = "\"";
    for (const char c : value) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char escaped[8];
                    std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
                    out += escaped;
                }
                else {
                    out += c;
                }
        }
    }
    out += '"';
    return out;
}

namespace {

int hexDigit(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// The four hex digits at `text[pos..pos+4)`, or -1.
long hex4(std::string_view text, size_t pos) {
    if (pos + 4 > text.size()) {
        return -1;
    }
    long value = 0;
    for (size_t i = pos; i < pos + 4; ++i) {
        const int digit = hexDigit(text[i]);
        if (digit < 0) {
            return -1;
        }
        value = value * 16 + digit;
    }
    return value;
}

void appendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    }
    else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
    else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
    else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

} // namespace

bool unquote(std::string_view literal, std::string& out) {
    out.clear();
    if (literal.size() < 2 || literal.front() != '"' || literal.back() != '"') {
        return false;
    }
    const std::string_view body = literal.substr(1, literal.size() - 2);
    for (size_t i = 0; i < body.size(); ++i) {
        const char c = body[i];
        if (c == '"' || static_cast<unsigned char>(c) < 0x20) {
            return false;
        }
        if (c != '\\') {
            out += c;
            continue;
        }
        if (++i >= body.size()) {
            return false;
        }
        switch (body[i]) {
            case '"': out += '"'; break;
            case '\\': out += '\\'; break;
            case '/': out += '/'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                long cp = hex4(body, i + 1);
                if (cp < 0) {
                    return false;
                }
                i += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    // A high surrogate must be followed by an escaped low one.
                    if (i + 2 >= body.size() || body[i + 1] != '\\' || body[i + 2] != 'u') {
                        return false;
                    }
                    const long low = hex4(body, i + 3);
                    if (low < 0xDC00 || low > 0xDFFF) {
                        return false;
                    }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    i += 6;
                }
                else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return false;
                }
                appendUtf8(out, static_cast<uint32_t>(cp));
                break;
            }
            default:
                return false;
        }
    }
    return true;
}

} // namespace glhost::json
