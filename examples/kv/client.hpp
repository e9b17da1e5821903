// A small Redis client for the kv example's tests and demo: one connection, one command at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "deja/net/socket_addr.hpp"
#include "deja/net/tcp_stream.hpp"
#include "deja/task.hpp"
#include "resp.hpp"

namespace kv {

// The server answered with a RESP error ("-ERR ...").
class ServerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Client {
 public:
  // Connects; std::system_error as TcpStream::connect.
  static deja::Task<Client> connect(deja::net::SocketAddr server);

  // Sends one command and waits for its reply. std::system_error when the connection fails or
  // the server closes it (the command's outcome is then unknown), ServerError for an error reply,
  // std::runtime_error for a reply that is not RESP.
  deja::Task<resp::Reply> command(std::vector<std::string> args);

  deja::Task<std::optional<std::string>> get(std::string key);
  deja::Task<void> set(std::string key, std::string value);
  deja::Task<std::int64_t> del(std::string key);

 private:
  explicit Client(deja::net::TcpStream stream) : stream_(std::move(stream)) {}
  deja::net::TcpStream stream_;
  std::string in_;
};

}  // namespace kv
