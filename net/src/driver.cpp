// current_driver(): the simulator's network when a runtime installed one, else posix sockets.
#include "deja/net/driver.hpp"

#include "deja/context.hpp"
#include "posix_net.hpp"

namespace deja::net {

NetDriver& current_driver() {
  RuntimeContext& rt = require_runtime("deja::net");
  if (rt.net != nullptr) return *rt.net;
  if (rt.io == nullptr) throw UsageError("deja::net: the current runtime has neither a network nor an I/O driver");
  // Stateless: every socket registers with the reactor of the runtime current when it is made.
  static posix::PosixNetDriver posix_driver;
  return posix_driver;
}

}  // namespace deja::net
