// The kv example's RESP2 parser and command store.
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <rapidcheck.h>

#include "resp.hpp"
#include "store.hpp"

namespace {

using kv::resp::ParseStatus;

std::string encode_command(const std::vector<std::string>& args) {
  std::string out;
  kv::resp::append_array_header(out, args.size());
  for (const auto& a : args) kv::resp::append_bulk(out, a);
  return out;
}

std::string run(kv::Store& store, std::vector<std::string> args) {
  std::string reply;
  store.execute(args, reply);
  return reply;
}

}  // namespace

TEST_CASE("RESP parses an array of bulk strings and reports the bytes it used") {
  // A value may hold CR, LF and NUL: bulk strings are length-prefixed.
  const std::string value("v\r\n\0x", 5);
  std::string encoded = encode_command({"SET", "key", value});
  std::vector<std::string> args;
  const auto r = kv::resp::parse_command(encoded + "*1\r\n$4\r\nPING\r\n", args);
  REQUIRE(r.status == ParseStatus::kCommand);
  CHECK(r.consumed == encoded.size());
  CHECK(args == std::vector<std::string>{"SET", "key", value});
}

TEST_CASE("RESP reports every proper prefix of a command as incomplete") {
  const std::string encoded = encode_command({"SET", "a-key", "a value of some length"});
  std::vector<std::string> args;
  for (std::size_t n = 0; n < encoded.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    const auto r = kv::resp::parse_command(std::string_view(encoded).substr(0, n), args);
    REQUIRE(r.status == ParseStatus::kIncomplete);
  }
  REQUIRE(kv::resp::parse_command(encoded, args).status == ParseStatus::kCommand);
}

TEST_CASE("RESP parses inline commands as a person types them") {
  std::vector<std::string> args;
  auto r = kv::resp::parse_command("  SET  k   v\r\nGET k\n", args);
  REQUIRE(r.status == ParseStatus::kCommand);
  CHECK(args == std::vector<std::string>{"SET", "k", "v"});
  CHECK(r.consumed == 14);
  r = kv::resp::parse_command("\r\n", args);
  CHECK(r.status == ParseStatus::kEmpty);
  CHECK(r.consumed == 2);
  CHECK(kv::resp::parse_command("PING", args).status == ParseStatus::kIncomplete);
}

TEST_CASE("RESP rejects malformed lengths and terminators with Redis's protocol errors") {
  std::vector<std::string> args;
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"*x\r\n", "invalid multibulk length"},
      {"*1\r\n$-1\r\n", "invalid bulk length"},
      {"*1\r\n$abc\r\n", "invalid bulk length"},
      {"*1\r\n:5\r\n", "expected '$'"},
      {"*1\r\n$3\r\nabcXY", "not terminated by CRLF"},
      {"*+1\r\n", "invalid multibulk length"},
      {"*" + std::string(40, '1') + "\r\n", "invalid multibulk length"},
  };
  for (const auto& [input, message] : bad) {
    INFO(input);
    const auto r = kv::resp::parse_command(input, args);
    REQUIRE(r.status == ParseStatus::kError);
    CHECK(r.error.find("Protocol error") == 0);
    CHECK(r.error.find(message) != std::string::npos);
  }
}

TEST_CASE("RESP refuses commands over its limits before buffering them") {
  kv::resp::Limits limits;
  limits.max_bulk_length = 16;
  limits.max_arguments = 4;
  limits.max_inline_length = 32;
  std::vector<std::string> args;
  // The length line alone is enough to refuse: no need to wait for the 1 GB that would follow.
  CHECK(kv::resp::parse_command("*1\r\n$1000000000\r\n", args, limits).status == ParseStatus::kError);
  CHECK(kv::resp::parse_command("*5\r\n", args, limits).status == ParseStatus::kError);
  CHECK(kv::resp::parse_command(std::string(33, 'a'), args, limits).status == ParseStatus::kError);
  CHECK(kv::resp::parse_command("a b c d e\r\n", args, limits).status == ParseStatus::kError);
  // A length line that never ends is refused once it is longer than any valid one.
  CHECK(kv::resp::parse_command("*1\r\n$" + std::string(64, '9'), args, limits).status == ParseStatus::kError);
}

TEST_CASE("RESP parsing of any command encoding returns it, and of random bytes never overreads") {
  CHECK(rc::check("RESP encode then parse is the identity", [](const std::vector<std::string>& raw) {
    std::vector<std::string> command = raw;
    if (command.empty()) command.push_back("PING");
    if (command.size() > 64) command.resize(64);
    const std::string wire = encode_command(command) + "garbage after";
    std::vector<std::string> args;
    const auto r = kv::resp::parse_command(wire, args);
    RC_ASSERT(r.status == ParseStatus::kCommand);
    RC_ASSERT(r.consumed == wire.size() - 13);
    RC_ASSERT(args == command);
  }));
  CHECK(rc::check("RESP parses or refuses random bytes within bounds", [](const std::string& bytes) {
    std::vector<std::string> args;
    const auto r = kv::resp::parse_command(bytes, args);
    RC_ASSERT(r.consumed <= bytes.size());
    if (r.status == ParseStatus::kError) RC_ASSERT(!r.error.empty());
    if (r.status == ParseStatus::kCommand) RC_ASSERT(!args.empty());
  }));
}

TEST_CASE("RESP encodes each reply type") {
  std::string out;
  kv::resp::append_simple(out, "OK");
  kv::resp::append_error(out, "ERR bad\r\nthing");
  kv::resp::append_integer(out, -42);
  kv::resp::append_bulk(out, std::string("a\0b", 3));
  kv::resp::append_null_bulk(out);
  kv::resp::append_array_header(out, 2);
  static constexpr char kExpected[] = "+OK\r\n-ERR bad  thing\r\n:-42\r\n$3\r\na\0b\r\n$-1\r\n*2\r\n";
  CHECK(out == std::string(kExpected, sizeof kExpected - 1));
}

TEST_CASE("kv store answers PING GET SET and DEL as Redis does") {
  kv::Store store;
  CHECK(run(store, {"PING"}) == "+PONG\r\n");
  CHECK(run(store, {"ping", "hi"}) == "$2\r\nhi\r\n");
  CHECK(run(store, {"GET", "k"}) == "$-1\r\n");
  CHECK(run(store, {"SET", "k", "v1"}) == "+OK\r\n");
  CHECK(run(store, {"set", "k", "v2"}) == "+OK\r\n");
  CHECK(run(store, {"GET", "k"}) == "$2\r\nv2\r\n");
  CHECK(run(store, {"SET", "j", "x"}) == "+OK\r\n");
  CHECK(run(store, {"DEL", "k", "j", "missing"}) == ":2\r\n");
  CHECK(store.size() == 0);
  CHECK(run(store, {"CONFIG", "GET", "save"}) == "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
}

TEST_CASE("kv store refuses unknown commands and wrong arities and changes nothing") {
  kv::Store store;
  CHECK(run(store, {"FLUSHALL"}) == "-ERR unknown command 'FLUSHALL'\r\n");
  CHECK(run(store, {"GET"}) == "-ERR wrong number of arguments for 'get' command\r\n");
  CHECK(run(store, {"SET", "k"}) == "-ERR wrong number of arguments for 'set' command\r\n");
  CHECK(run(store, {"SET", "k", "v", "EX"}) == "-ERR syntax error\r\n");
  CHECK(run(store, {"DEL"}) == "-ERR wrong number of arguments for 'del' command\r\n");
  CHECK(kv::classify({"SET", "k", "v"}) == kv::CommandKind::kWrite);
  CHECK(kv::classify({"GET", "k"}) == kv::CommandKind::kRead);
  CHECK(store.size() == 0);
}

TEST_CASE("kv store keeps its key and size limits") {
  kv::StoreLimits limits;
  limits.max_keys = 2;
  limits.max_value_length = 4;
  kv::Store store(limits);
  CHECK(run(store, {"SET", "a", "1"}) == "+OK\r\n");
  CHECK(run(store, {"SET", "b", "2"}) == "+OK\r\n");
  CHECK(run(store, {"SET", "c", "3"}).rfind("-OOM", 0) == 0);
  CHECK(run(store, {"SET", "a", "overwrite is fine"}).rfind("-ERR", 0) == 0);
  CHECK(run(store, {"SET", "a", "ok"}) == "+OK\r\n");
  CHECK(store.size() == 2);
}
