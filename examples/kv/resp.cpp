// RESP2 command parsing and reply encoding.
#include "resp.hpp"

#include <charconv>

namespace kv::resp {
namespace {

ParseResult error(std::string text) { return {ParseStatus::kError, 0, std::move(text)}; }

// Reads a decimal integer line ("123\r\n") starting at `at`, which follows a type byte. Redis accepts
// only digits with an optional leading '-', and so do we. Returns false with `incomplete` set when the
// line has not fully arrived (bounded: a length line longer than 32 bytes is malformed).
bool read_length_line(std::string_view in, std::size_t& at, long long& value, bool& incomplete) {
  constexpr std::size_t kMaxLine = 32;
  const std::size_t end = in.find("\r\n", at);
  if (end == std::string_view::npos) {
    incomplete = in.size() - at <= kMaxLine;
    return false;
  }
  if (end - at > kMaxLine || end == at) return false;
  const char* first = in.data() + at;
  const char* last = in.data() + end;
  const auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || ptr != last) return false;
  at = end + 2;
  return true;
}

ParseResult parse_inline(std::string_view in, std::vector<std::string>& args, const Limits& limits) {
  const std::size_t nl = in.find('\n');
  if (nl == std::string_view::npos) {
    if (in.size() > limits.max_inline_length) return error("Protocol error: too big inline request");
    return {ParseStatus::kIncomplete, 0, {}};
  }
  if (nl > limits.max_inline_length) return error("Protocol error: too big inline request");
  std::string_view line = in.substr(0, nl);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i == line.size()) break;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (args.size() == limits.max_arguments) return error("Protocol error: too many arguments");
    args.emplace_back(line.substr(start, i - start));
  }
  return {args.empty() ? ParseStatus::kEmpty : ParseStatus::kCommand, nl + 1, {}};
}

void append_line(std::string& out, char type, std::string_view text) {
  out.push_back(type);
  out.append(text);
  out.append("\r\n");
}

}  // namespace

ParseResult parse_command(std::string_view in, std::vector<std::string>& args, const Limits& limits) {
  args.clear();
  if (in.empty()) return {ParseStatus::kIncomplete, 0, {}};
  if (in[0] != '*') return parse_inline(in, args, limits);

  std::size_t at = 1;
  long long count = 0;
  bool incomplete = false;
  if (!read_length_line(in, at, count, incomplete)) {
    if (incomplete) return {ParseStatus::kIncomplete, 0, {}};
    return error("Protocol error: invalid multibulk length");
  }
  if (count > static_cast<long long>(limits.max_arguments)) return error("Protocol error: invalid multibulk length");
  if (count <= 0) return {ParseStatus::kEmpty, at, {}};  // Redis ignores "*0" and "*-1"
  args.reserve(static_cast<std::size_t>(count));
  for (long long i = 0; i < count; ++i) {
    if (at == in.size()) return {ParseStatus::kIncomplete, 0, {}};
    if (in[at] != '$') return error(std::string("Protocol error: expected '$', got '") + in[at] + "'");
    ++at;
    long long length = 0;
    if (!read_length_line(in, at, length, incomplete)) {
      if (incomplete) return {ParseStatus::kIncomplete, 0, {}};
      return error("Protocol error: invalid bulk length");
    }
    if (length < 0 || static_cast<unsigned long long>(length) > limits.max_bulk_length) {
      return error("Protocol error: invalid bulk length");
    }
    const auto n = static_cast<std::size_t>(length);
    if (in.size() - at < n + 2) return {ParseStatus::kIncomplete, 0, {}};
    if (in[at + n] != '\r' || in[at + n + 1] != '\n') return error("Protocol error: bulk string not terminated by CRLF");
    args.emplace_back(in.substr(at, n));
    at += n + 2;
  }
  return {ParseStatus::kCommand, at, {}};
}

void append_simple(std::string& out, std::string_view text) { append_line(out, '+', text); }

void append_error(std::string& out, std::string_view text) {
  out.push_back('-');
  for (const char c : text) out.push_back(c == '\r' || c == '\n' ? ' ' : c);
  out.append("\r\n");
}

void append_integer(std::string& out, std::int64_t value) {
  char buf[24];
  const auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, value);
  (void)ec;  // 24 bytes always hold an int64
  append_line(out, ':', std::string_view(buf, static_cast<std::size_t>(ptr - buf)));
}

void append_bulk(std::string& out, std::string_view data) {
  char buf[24];
  const auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, data.size());
  (void)ec;
  append_line(out, '$', std::string_view(buf, static_cast<std::size_t>(ptr - buf)));
  out.append(data);
  out.append("\r\n");
}

void append_null_bulk(std::string& out) { out.append("$-1\r\n"); }

void append_array_header(std::string& out, std::size_t count) {
  char buf[24];
  const auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, count);
  (void)ec;
  append_line(out, '*', std::string_view(buf, static_cast<std::size_t>(ptr - buf)));
}

}  // namespace kv::resp
