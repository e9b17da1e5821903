// Error codes of deja's channels and semaphores (std::error_code, category "deja.channel"): the
// expected outcomes of talking to a closed or full channel, which callers handle, not bugs.
#pragma once

#include <string>
#include <system_error>

namespace deja {

enum class ChannelErrc {
  kClosed = 1,  // the other side is gone (all receivers, all senders) or the channel was closed
  kFull,        // try_send: no capacity right now
  kEmpty,       // try_recv: nothing to receive right now
  kLagged,      // broadcast: this receiver fell behind and missed messages
};

const std::error_category& channel_category() noexcept;

inline std::error_code make_error_code(ChannelErrc e) noexcept { return {static_cast<int>(e), channel_category()}; }

}  // namespace deja

template <>
struct std::is_error_code_enum<deja::ChannelErrc> : std::true_type {};
