// The kv example's client.
#include "client.hpp"

#include <array>
#include <span>

namespace kv {

deja::Task<Client> Client::connect(deja::net::SocketAddr server) {
  deja::net::TcpStream stream = co_await deja::net::TcpStream::connect(server);
  stream.set_nodelay(true);
  co_return Client(std::move(stream));
}

deja::Task<resp::Reply> Client::command(std::vector<std::string> args) {
  std::string out;
  resp::append_array_header(out, args.size());
  for (const auto& a : args) resp::append_bulk(out, a);
  co_await stream_.write_all(std::as_bytes(std::span<const char>(out.data(), out.size())));
  resp::Reply reply;
  std::array<std::byte, 4096> buf;
  for (;;) {
    const auto r = resp::parse_reply(in_, reply);
    if (r.status == resp::ParseStatus::kCommand) {
      in_.erase(0, r.consumed);
      break;
    }
    if (r.status == resp::ParseStatus::kError) throw std::runtime_error("kv::Client: " + r.error);
    const std::size_t n = co_await stream_.read(buf);
    if (n == 0) throw std::system_error(std::make_error_code(std::errc::connection_reset), "kv::Client: the server closed the connection");
    in_.append(reinterpret_cast<const char*>(buf.data()), n);
  }
  if (reply.type == resp::Reply::Type::kError) throw ServerError(reply.text);
  co_return reply;
}

deja::Task<std::optional<std::string>> Client::get(std::string key) {
  std::vector<std::string> args{"GET", std::move(key)};  // named: g++ 12 miscompiles a braced list inside co_await
  resp::Reply r = co_await command(std::move(args));
  if (r.type == resp::Reply::Type::kNull) co_return std::nullopt;
  co_return std::move(r.text);
}

deja::Task<void> Client::set(std::string key, std::string value) {
  std::vector<std::string> args{"SET", std::move(key), std::move(value)};
  const resp::Reply r = co_await command(std::move(args));
  if (r.type != resp::Reply::Type::kSimple || r.text != "OK") throw ServerError("kv::Client: unexpected reply to SET");
}

deja::Task<std::int64_t> Client::del(std::string key) {
  std::vector<std::string> args{"DEL", std::move(key)};
  const resp::Reply r = co_await command(std::move(args));
  if (r.type != resp::Reply::Type::kInteger) throw ServerError("kv::Client: unexpected reply to DEL");
  co_return r.integer;
}

}  // namespace kv
