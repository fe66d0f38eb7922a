/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___JSON_MEMBERS___H__
#define __OSW_GL_HOST___JSON_MEMBERS___H__

// Just enough JSON for the host to merge `--config-json` into the configuration it
// builds: split an object into its top-level members, keeping each value's text as
// written. It checks the structure (strings, nesting, commas) but not the values
// themselves; rust-core parses the result with serde and reports anything wrong with a
// clear message.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace glhost::json {

// A member: the key as written between its quotes (escapes kept) and the value's text.
using Member = std::pair<std::string, std::string>;

// Splits `text`, which must hold one JSON object, into its members. On malformed text
// returns false and describes the problem in `error`.
bool splitObject(std::string_view text, std::vector<Member>& members,
                 std::string& error);

// `base` with each member of `overrides` replacing the one of the same key, or appended.
std::vector<Member> merge(std::vector<Member> base, const std::vector<Member>& overrides);

std::string writeObject(const std::vector<Member>& members);

// `value` as a JSON string literal, quotes included.
std::string quote(std::string_view value);

// The text of the JSON string literal `literal` (quotes included), its escapes decoded
// (`\uXXXX` and surrogate pairs to UTF-8). Returns false when `literal` is not exactly one
// well-formed string literal.
bool unquote(std::string_view literal, std::string& out);

} // namespace glhost::json

#endif // __OSW_GL_HOST___JSON_MEMBERS___H__
