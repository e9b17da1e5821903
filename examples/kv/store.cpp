// The kv commands.
#include "store.hpp"

#include <algorithm>
#include <cctype>

#include "resp.hpp"

namespace kv {
namespace {

bool is(std::string_view arg, std::string_view name) {
  return arg.size() == name.size() && std::equal(arg.begin(), arg.end(), name.begin(), [](char a, char b) {
           return std::toupper(static_cast<unsigned char>(a)) == b;
         });
}

std::string wrong_arity(std::string_view command) {
  std::string lower(command);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return "ERR wrong number of arguments for '" + lower + "' command";
}

}  // namespace

CommandKind classify(const std::vector<std::string>& args, std::string* error) {
  auto invalid = [&](std::string text) {
    if (error) *error = std::move(text);
    return CommandKind::kInvalid;
  };
  if (args.empty()) return invalid("ERR empty command");
  const std::string& name = args[0];
  const std::size_t n = args.size();
  if (is(name, "PING")) return n <= 2 ? CommandKind::kRead : invalid(wrong_arity(name));
  if (is(name, "GET")) return n == 2 ? CommandKind::kRead : invalid(wrong_arity(name));
  if (is(name, "SET")) return n == 3 ? CommandKind::kWrite : invalid(n < 3 ? wrong_arity(name) : "ERR syntax error");
  if (is(name, "DEL")) return n >= 2 ? CommandKind::kWrite : invalid(wrong_arity(name));
  if (is(name, "CONFIG")) {
    return n == 3 && is(args[1], "GET") ? CommandKind::kRead : invalid("ERR only CONFIG GET <name> is supported");
  }
  if (is(name, "COMMAND")) return CommandKind::kRead;
  std::string shown = name.substr(0, 128);
  for (char& c : shown) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  return invalid("ERR unknown command '" + shown + "'");
}

void Store::execute(const std::vector<std::string>& args, std::string& reply) {
  std::string error;
  if (classify(args, &error) == CommandKind::kInvalid) {
    resp::append_error(reply, error);
    return;
  }
  const std::string& name = args[0];
  if (is(name, "PING")) {
    if (args.size() == 2) {
      resp::append_bulk(reply, args[1]);
    } else {
      resp::append_simple(reply, "PONG");
    }
  } else if (is(name, "GET")) {
    const auto it = data_.find(args[1]);
    if (it == data_.end()) {
      resp::append_null_bulk(reply);
    } else {
      resp::append_bulk(reply, it->second);
    }
  } else if (is(name, "SET")) {
    if (args[1].size() > limits_.max_key_length || args[2].size() > limits_.max_value_length) {
      resp::append_error(reply, "ERR key or value too large");
      return;
    }
    const auto it = data_.find(args[1]);
    if (it != data_.end()) {
      it->second = args[2];
    } else if (data_.size() >= limits_.max_keys) {
      resp::append_error(reply, "OOM the store holds its maximum number of keys");
      return;
    } else {
      data_.emplace(args[1], args[2]);
    }
    resp::append_simple(reply, "OK");
  } else if (is(name, "DEL")) {
    std::int64_t removed = 0;
    for (std::size_t i = 1; i < args.size(); ++i) removed += static_cast<std::int64_t>(data_.erase(args[i]));
    resp::append_integer(reply, removed);
  } else if (is(name, "CONFIG")) {
    // redis-benchmark asks for "save" and "appendonly" to print them; we persist nothing.
    if (is(args[2], "SAVE") || is(args[2], "APPENDONLY")) {
      resp::append_array_header(reply, 2);
      resp::append_bulk(reply, args[2]);
      resp::append_bulk(reply, is(args[2], "SAVE") ? "" : "no");
    } else {
      resp::append_array_header(reply, 0);
    }
  } else {  // COMMAND: redis-cli asks for command docs to offer hints; an empty list means none
    resp::append_array_header(reply, 0);
  }
}

}  // namespace kv
