// The epoll reactor: edge-triggered readiness for every registration, and an eventfd that other
// threads write to wake the loop.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "deja/detail/reactor.hpp"

namespace deja::detail {

namespace {

[[noreturn]] void throw_errno(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

class EpollReactor final : public Reactor {
 public:
  explicit EpollReactor(std::uint32_t max_events) : max_events_(static_cast<int>(std::min<std::uint32_t>(max_events, kBatch))) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) throw_errno("deja: epoll_create1");
    event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (event_fd_ < 0) {
      ::close(epoll_fd_);
      throw_errno("deja: eventfd");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // the eventfd; registrations are never null
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, event_fd_, &ev) < 0) {
      ::close(event_fd_);
      ::close(epoll_fd_);
      throw_errno("deja: epoll_ctl(eventfd)");
    }
  }

  ~EpollReactor() override {
    ::close(event_fd_);
    ::close(epoll_fd_);
  }

  IoRegistration* register_fd(int fd) override {
    auto reg = std::make_unique<IoRegistration>();
    reg->fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = reg.get();
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0) throw_errno("deja: epoll_ctl(ADD)");
    ++registrations_;
    return reg.release();
  }

  void deregister(IoRegistration* reg) noexcept override {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, reg->fd, nullptr);
    {
      std::lock_guard lock(reg->lock);
      while (Waiter* w = reg->readers.pop_front()) w->notify();
      while (Waiter* w = reg->writers.pop_front()) w->notify();
    }
    --registrations_;
    delete reg;
  }

  bool poll(int timeout_ms) override {
    epoll_event events[kBatch];
    const int n = ::epoll_wait(epoll_fd_, events, max_events_, timeout_ms);
    bool notified = false;
    for (int i = 0; i < n; ++i) {
      auto* reg = static_cast<IoRegistration*>(events[i].data.ptr);
      if (reg == nullptr) {
        std::uint64_t counter;
        [[maybe_unused]] ssize_t r = ::read(event_fd_, &counter, sizeof counter);
        notified = true;
        continue;
      }
      report_epoll_event(*reg, events[i].events);
    }
    return notified;
  }

  void notify() noexcept override {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(event_fd_, &one, sizeof one);
  }

  bool has_io() const noexcept override { return registrations_ != 0; }

 private:
  static constexpr int kBatch = 256;
  int max_events_;
  int epoll_fd_ = -1;
  int event_fd_ = -1;
  std::size_t registrations_ = 0;
};

}  // namespace

std::unique_ptr<Reactor> make_epoll_reactor(std::uint32_t max_events) { return std::make_unique<EpollReactor>(max_events); }

}  // namespace deja::detail
