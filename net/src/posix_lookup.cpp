// Name lookup with getaddrinfo, on the blocking pool so that a slow resolver never stalls the
// event loop.
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "addr_text.hpp"
#include "deja/blocking.hpp"
#include "posix_net.hpp"

namespace deja::net::posix {

namespace {

// getaddrinfo can return the same address for several protocols or from several sources; more
// than this many distinct addresses for one name is not useful to a connecting client.
constexpr std::size_t kMaxLookupResults = 64;

struct LookupResult {
  std::vector<SocketAddr> addrs;
  int gai_error = 0;
  int sys_error = 0;
};

LookupResult resolve(const std::string& host, std::uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  // One entry per address instead of one per (address, protocol). No AI_ADDRCONFIG: on a host
  // whose only interface is loopback it would hide "localhost".
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  LookupResult result;
  result.gai_error = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
  if (result.gai_error != 0) {
    if (result.gai_error == EAI_SYSTEM) result.sys_error = errno;
    return result;
  }
  for (const addrinfo* it = list; it != nullptr && result.addrs.size() < kMaxLookupResults; it = it->ai_next) {
    if (it->ai_family != AF_INET && it->ai_family != AF_INET6) continue;
    SocketAddr addr = SocketAddr::from_sockaddr(it->ai_addr, it->ai_addrlen);
    addr.set_port(port);
    if (std::find(result.addrs.begin(), result.addrs.end(), addr) == result.addrs.end()) result.addrs.push_back(addr);
  }
  ::freeaddrinfo(list);
  return result;
}

// Host names as DNS and /etc/hosts allow them (RFC 1123 letters, digits, '-', '.', plus '_' seen
// in practice), at most 253 characters. Anything else cannot name a host, so it is the caller's
// bad input and not a lookup failure.
void check_host_name(const std::string& host) {
  const char* problem = nullptr;
  if (host.empty()) problem = "the name is empty";
  else if (host.size() > 253) problem = "the name is longer than 253 characters";
  else if (!std::all_of(host.begin(), host.end(), [](char c) {
             return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.' || c == '_';
           }))
    problem = "a host name has only letters, digits, '-', '.' and '_'";
  if (problem != nullptr) throw AddrParseError(fmt::format("deja::net: invalid host name {}: {}", detail::quote(host), problem));
}

}  // namespace

Task<std::vector<SocketAddr>> PosixNetDriver::lookup(std::string host, std::uint16_t port) {
  // A literal address needs no resolver; "[v6]" is accepted as it appears in "host:port" text.
  std::string_view literal = host;
  if (literal.size() >= 2 && literal.front() == '[' && literal.back() == ']') literal = literal.substr(1, literal.size() - 2);
  if (const auto ip = IpAddr::try_parse(literal)) co_return std::vector<SocketAddr>{SocketAddr(*ip, port)};
  check_host_name(host);
  // Named, not temporaries of the co_await expression: g++ 12 destroys a closure temporary of a
  // co_await full-expression twice (a double free under ASan).
  auto resolve_job = [host, port] { return resolve(host, port); };
  JoinHandle<LookupResult> resolving = deja::spawn_blocking(std::move(resolve_job));
  LookupResult result = co_await resolving;
  if (result.gai_error == EAI_SYSTEM) throw_errno(result.sys_error, "lookup");
  if (result.gai_error == EAI_MEMORY) throw std::system_error(std::make_error_code(std::errc::not_enough_memory), "deja::net: lookup");
  if (result.gai_error != 0 || result.addrs.empty()) {
    const char* why = result.gai_error != 0 ? ::gai_strerror(result.gai_error) : "no IPv4 or IPv6 address";
    throw std::system_error(std::make_error_code(std::errc::host_unreachable),
                            fmt::format("deja::net: lookup of {} failed: {}", detail::quote(host), why));
  }
  co_return std::move(result.addrs);
}

}  // namespace deja::net::posix
