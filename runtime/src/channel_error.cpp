// The "deja.channel" error category.
#include "deja/sync/channel_error.hpp"

namespace deja {

namespace {

class ChannelCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "deja.channel"; }
  std::string message(int code) const override {
    switch (static_cast<ChannelErrc>(code)) {
      case ChannelErrc::kClosed: return "channel closed";
      case ChannelErrc::kFull: return "channel full";
      case ChannelErrc::kEmpty: return "channel empty";
      case ChannelErrc::kLagged: return "receiver lagged behind and missed messages";
    }
    return "unknown channel error";
  }
};

}  // namespace

const std::error_category& channel_category() noexcept {
  static const ChannelCategory category;
  return category;
}

}  // namespace deja
