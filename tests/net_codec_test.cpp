// BufReader, BufWriter and the length-delimited FrameCodec, over in-memory streams (rapidcheck
// chooses how reads are chunked) and over loopback TCP.
#include <catch2/catch.hpp>
#include <rapidcheck.h>

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "net_test_support.hpp"

using namespace std::chrono_literals;
using deja::net::FrameCodec;
using deja::net::TcpListener;
using deja::net::TcpStream;
using net_test::kLoopbackAnyPort;

namespace {

// A stream over fixed bytes whose reads return at most the next chunk size (cycled), so tests
// see the short reads a network produces.
struct MemoryReader {
  std::vector<std::byte> data;
  std::vector<std::size_t> chunks{1};
  std::size_t pos = 0;
  std::size_t next_chunk = 0;

  deja::Task<std::size_t> read(std::span<std::byte> buf) {
    std::size_t limit = std::max<std::size_t>(chunks[next_chunk++ % chunks.size()], 1);
    const std::size_t n = std::min({buf.size(), data.size() - pos, limit});
    std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(pos), n, buf.begin());
    pos += n;
    co_return n;
  }
};

// A sink whose writes accept at most `limit` bytes each.
struct MemoryWriter {
  std::vector<std::byte> data;
  std::size_t limit = 3;
  deja::Task<std::size_t> write(std::span<const std::byte> buf) {
    const std::size_t n = std::min(buf.size(), limit);
    data.insert(data.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    co_return n;
  }
};

static_assert(deja::net::AsyncRead<MemoryReader>);
static_assert(deja::net::AsyncWrite<MemoryWriter>);
static_assert(deja::net::AsyncRead<TcpStream>);
static_assert(deja::net::AsyncWrite<deja::net::OwnedWriteHalf>);

std::vector<std::byte> bytes_of(const std::vector<std::uint8_t>& v) {
  std::vector<std::byte> out(v.size());
  std::transform(v.begin(), v.end(), out.begin(), [](std::uint8_t b) { return std::byte{b}; });
  return out;
}

deja::Task<std::vector<std::vector<std::byte>>> read_all_frames(MemoryReader* reader, FrameCodec codec) {
  std::vector<std::vector<std::byte>> frames;
  for (;;) {
    std::optional<std::vector<std::byte>> frame = co_await codec.read_frame(*reader);
    if (!frame) co_return frames;
    frames.push_back(std::move(*frame));
  }
}

deja::Task<void> write_all_frames(MemoryWriter* writer, FrameCodec codec, const std::vector<std::vector<std::byte>>* frames) {
  for (const auto& frame : *frames) co_await codec.write_frame(*writer, frame);
}

}  // namespace

TEST_CASE("frame codec returns every payload it wrote however reads are chunked", "[net]") {
  const bool ok = rc::check("frame codec round trip", [](const std::vector<std::vector<std::uint8_t>>& raw, const std::vector<std::size_t>& chunks) {
    std::vector<std::vector<std::byte>> frames;
    for (const auto& r : raw) frames.push_back(bytes_of(r));
    const FrameCodec codec(1 << 16);
    MemoryWriter writer;
    writer.limit = 1 + (chunks.empty() ? 0 : chunks.front() % 7);
    deja::block_on(write_all_frames(&writer, codec, &frames));
    // encode produces the same bytes as write_frame.
    std::vector<std::byte> encoded;
    for (const auto& f : frames) codec.encode(f, encoded);
    RC_ASSERT(encoded == writer.data);
    MemoryReader reader{writer.data, chunks.empty() ? std::vector<std::size_t>{1} : chunks};
    for (auto& c : reader.chunks) c = 1 + c % 9;
    const auto decoded = deja::block_on(read_all_frames(&reader, codec));
    RC_ASSERT(decoded == frames);
    // decode over the whole buffer agrees.
    std::span<const std::byte> rest = encoded;
    std::vector<std::vector<std::byte>> pure;
    while (auto d = codec.decode(rest)) {
      pure.push_back(std::move(d->payload));
      rest = rest.subspan(d->consumed);
    }
    RC_ASSERT(rest.empty());
    RC_ASSERT(pure == frames);
  });
  REQUIRE(ok);
}

TEST_CASE("frame codec decode of any bytes yields a frame or asks for more or refuses an oversized one", "[net]") {
  const bool ok = rc::check("frame codec decode total", [](const std::vector<std::uint8_t>& raw) {
    const FrameCodec codec(64);
    const std::vector<std::byte> bytes = bytes_of(raw);
    try {
      const auto d = codec.decode(bytes);
      if (d) {
        RC_ASSERT(d->consumed == FrameCodec::kHeaderSize + d->payload.size());
        RC_ASSERT(d->consumed <= bytes.size());
        RC_ASSERT(d->payload.size() <= 64u);
      } else {
        RC_ASSERT((bytes.size() < 4 || bytes.size() < 4 + (std::size_t(raw[0]) << 24 | std::size_t(raw[1]) << 16 | std::size_t(raw[2]) << 8 | raw[3])));
      }
    } catch (const deja::net::MessageTooLarge& e) {
      RC_ASSERT(e.size() > 64u);
      RC_ASSERT(e.code() == std::errc::message_size);
    }
  });
  REQUIRE(ok);
}

namespace {

deja::Task<void> oversized_and_truncated() {
  const FrameCodec codec(16);
  // Header announcing 4 GiB - 1: refused from the header alone, nothing allocated for it.
  MemoryReader huge{{std::byte{0xff}, std::byte{0xff}, std::byte{0xff}, std::byte{0xff}}, {4}};
  std::optional<std::size_t> announced;
  try {
    (void)co_await codec.read_frame(huge);
  } catch (const deja::net::MessageTooLarge& e) {
    announced = e.size();
    REQUIRE(e.limit() == 16);
  }
  REQUIRE(announced == std::optional<std::size_t>(0xffffffffu));
  // Writing an oversized frame writes nothing.
  MemoryWriter writer;
  const std::vector<std::byte> seventeen(17);
  bool refused = false;
  try {
    co_await codec.write_frame(writer, seventeen);
  } catch (const deja::net::MessageTooLarge&) {
    refused = true;
  }
  REQUIRE(refused);
  REQUIRE(writer.data.empty());
  // A stream that ends inside a header, or inside a payload, is UnexpectedEof.
  for (std::vector<std::byte> cut : {std::vector<std::byte>{std::byte{0}, std::byte{0}},
                                     std::vector<std::byte>{std::byte{0}, std::byte{0}, std::byte{0}, std::byte{5}, std::byte{1}}}) {
    MemoryReader reader{cut, {2}};
    bool eof = false;
    try {
      (void)co_await codec.read_frame(reader);
    } catch (const deja::net::UnexpectedEof& e) {
      eof = true;
      REQUIRE(e.code() == std::errc::no_message_available);
    }
    REQUIRE(eof);
  }
  // A clean end between frames is not an error.
  MemoryReader empty{{}, {1}};
  const auto none = co_await codec.read_frame(empty);
  REQUIRE_FALSE(none.has_value());
}

}  // namespace

TEST_CASE("frame codec refuses oversized frames and reports a stream that ends mid frame as UnexpectedEof", "[net]") {
  net_test::run(oversized_and_truncated());
}

namespace {

deja::Task<void> frames_over_tcp() {
  TcpListener listener = TcpListener::bind(kLoopbackAnyPort);
  TcpStream client = co_await TcpStream::connect(listener.local_addr());
  auto accepted = co_await listener.accept();
  const FrameCodec codec;
  std::vector<std::byte> big(200000);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::byte>(i % 251);
  auto writer = deja::spawn(codec.write_frame(client, big));
  const auto got = co_await codec.read_frame(accepted.stream);
  co_await writer;
  REQUIRE(got.has_value());
  REQUIRE(*got == big);
  co_await codec.write_frame(client, deja::net::as_bytes("small"));
  client.shutdown();
  const auto small = co_await codec.read_frame(accepted.stream);
  REQUIRE(small.has_value());
  REQUIRE(net_test::text_of(*small) == "small");
  const auto end = co_await codec.read_frame(accepted.stream);
  REQUIRE_FALSE(end.has_value());
}

}  // namespace

TEST_CASE("frame codec round trips frames over loopback tcp", "[net]") { net_test::run(frames_over_tcp()); }

namespace {

deja::Task<void> buffered_lines() {
  MemoryReader source{{}, {3, 1, 7}};
  for (char c : std::string("first\nsecond line\n") + std::string(100, 'x') + "\nlast") source.data.push_back(std::byte(c));
  deja::net::BufReader<MemoryReader> reader(std::move(source), 8);
  std::string line;
  std::size_t n = co_await reader.read_line(line);
  REQUIRE(n == 6);
  REQUIRE(line == "first\n");
  line.clear();
  co_await reader.read_line(line);
  REQUIRE(line == "second line\n");
  line.clear();
  bool too_long = false;
  try {
    co_await reader.read_line(line, 50);
  } catch (const deja::net::MessageTooLarge& e) {
    too_long = true;
    REQUIRE(e.code() == std::errc::message_size);
  }
  REQUIRE(too_long);
  REQUIRE(line.size() == 50);  // bounded: no more than the limit was kept
  line.clear();
  co_await reader.read_line(line, 1000);  // the rest of the long line
  REQUIRE(line == std::string(50, 'x') + "\n");
  line.clear();
  n = co_await reader.read_line(line);
  REQUIRE(line == "last");  // a last line without '\n'
  line.clear();
  n = co_await reader.read_line(line);
  REQUIRE(n == 0);
}

deja::Task<void> buffered_writes() {
  deja::net::BufWriter<MemoryWriter> writer(MemoryWriter{}, 16);
  std::string expected;
  for (int i = 0; i < 50; ++i) {
    const std::string piece = std::to_string(i) + ",";
    co_await writer.write_all(deja::net::as_bytes(piece));
    expected += piece;
    REQUIRE(writer.buffered() <= 16);
  }
  const std::string large(40, 'L');
  co_await writer.write_all(deja::net::as_bytes(large));
  expected += large;
  co_await writer.flush();
  REQUIRE(writer.buffered() == 0);
  REQUIRE(net_test::text_of(writer.get_ref().data) == expected);
}

}  // namespace

TEST_CASE("buf reader reads lines and refuses a line over its limit without growing past it", "[net]") {
  net_test::run(buffered_lines());
}

TEST_CASE("buf writer delivers everything written in order once flushed and stays within its capacity", "[net]") {
  net_test::run(buffered_writes());
}
