// The io_uring reactor. One ring serves two kinds of users:
// - AsyncFd registrations, as a multishot poll each (edge-triggered like the epoll reactor, and
//   reported through the same report_epoll_event, since poll masks are epoll's bits);
// - IoUring operations (recv, send, read, write), completed by the kernel.
// Nothing reaches the kernel until poll(): every submission queued while tasks ran goes in one
// io_uring_enter, which also waits for and collects completions.
//
// A completion's user_data is the address of what it belongs to, tagged in its low bits.
//
// The multi-thread runtime has one such ring per worker (WorkerRings), in shared mode: only
// operations, no registrations (its AsyncFds stay on its epoll, which also watches the rings'
// descriptors), and any thread may submit a cancellation or reap completions, under the ring's
// own two locks, which only its worker takes in the common case.
#include <liburing.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <span>
#include <string>
#include <sys/epoll.h>
#include <vector>

#include "deja/detail/reactor.hpp"
#include "deja/detail/task_header.hpp"
#include "deja/errors.hpp"
#include "deja/io_uring.hpp"

namespace deja {

IoUring* current_uring() noexcept {
  RuntimeContext* rt = current_runtime();
  return rt != nullptr ? rt->uring : nullptr;
}

bool IoUring::Operation::await_suspend(std::coroutine_handle<> h) noexcept {
  waiter_.task = detail::park_current(h, "io_uring operation");
  // Once queued, the operation is the reaper's: on the multi-thread runtime another thread may hand
  // it to the kernel and complete it before submit returns, so result_ is only written on failure.
  const std::int32_t error = ring_->submit(*this);
  if (error == 0) return true;
  result_ = error;
  return false;
}

namespace detail {

namespace {

constexpr std::uint64_t kTagOperation = 0;
constexpr std::uint64_t kTagPoll = 1;
constexpr std::uint64_t kTagMask = 3;
// Completions that carry no address.
constexpr std::uint64_t kEventFdRead = 2;
constexpr std::uint64_t kIgnored = 3;  // cancellations and poll removals: their target reports

// A registration and its multishot poll. The poll holds a reference to the file, so a removed
// registration lives until the kernel reports the poll ended.
struct UringRegistration : IoRegistration {
  bool armed = false;     // a poll is in the kernel: exactly one completion without F_MORE will end it
  bool removing = false;  // deregistered: freed by that last completion
  UringRegistration* prev = nullptr;  // all registrations, to free those still removing at the end
  UringRegistration* next = nullptr;
};

// The cancelled operation a destructor waits for is reported within a round or two; these bound
// the wait so that a kernel that never answers is a clear abort, not a hang or a use after free.
constexpr int kCancelRounds = 30;
constexpr long long kCancelRoundNs = 1'000'000'000;
// In shared mode the waiter looks every this many milliseconds, taking no lock while it sleeps.
constexpr int kSharedCancelPollMs = 1;

}  // namespace

class UringReactor final : public Reactor, public IoUring {
 public:
  UringReactor() = default;
  UringReactor(const UringReactor&) = delete;
  UringReactor& operator=(const UringReactor&) = delete;

  // Empty on success, else why io_uring cannot be used here. `shared`: a worker's ring of the
  // multi-thread runtime (see the top of this file).
  std::string init(std::uint32_t entries, bool shared) {
    // Fastest first: one thread submits and completions are run only when it asks for them
    // (6.1), then completions that interrupt no system call (5.19), then the plain ring. A shared
    // ring (any thread may submit a cancellation) cannot be single-issuer; cooperative task
    // running still wakes its worker where it sleeps (a condition variable, epoll) to post a
    // completion, but does not interrupt it while it runs tasks: it posts them at the worker's
    // next system call, and flush() makes one when the ring says they wait (TASKRUN_FLAG). An
    // interrupt on every completion cost a third more CPU per echo round trip, mostly spinning
    // on the socket's lock that the interrupted sender still held.
    const unsigned single_modes[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
                                     IORING_SETUP_COOP_TASKRUN, 0};
    const unsigned shared_modes[] = {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, 0};
    shared_ = shared;
    int error = -EINVAL;
    io_uring_params params{};
    for (unsigned flags : shared ? std::span<const unsigned>(shared_modes) : std::span<const unsigned>(single_modes)) {
      params = io_uring_params{};
      params.flags = flags;
      error = io_uring_queue_init_params(entries, &ring_, &params);
      if (error == 0) {
        single_issuer_ = (flags & IORING_SETUP_SINGLE_ISSUER) != 0;
        enabled_ = (flags & IORING_SETUP_R_DISABLED) == 0;
        break;
      }
      if (error != -EINVAL) break;
    }
    if (error != 0) return std::string("io_uring_setup failed: ") + std::strerror(-error);
    initialised_ = true;
    // Multishot poll (5.13, with resource tags), waits with a timeout (EXT_ARG) and no lost
    // completions when the completion ring is full (NODROP).
    const unsigned needed = IORING_FEAT_NODROP | IORING_FEAT_FAST_POLL | IORING_FEAT_EXT_ARG | IORING_FEAT_RSRC_TAGS;
    if ((params.features & needed) != needed) return "the kernel's io_uring lacks multishot poll or waits with a timeout (Linux 5.13 or later is needed)";
    io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
    if (probe == nullptr) return "the kernel's io_uring cannot be probed for its operations";
    const int ops[] = {IORING_OP_RECV, IORING_OP_SEND, IORING_OP_READ, IORING_OP_WRITE, IORING_OP_POLL_ADD, IORING_OP_POLL_REMOVE, IORING_OP_ASYNC_CANCEL};
    bool all = true;
    for (int op : ops) all = all && io_uring_opcode_supported(probe, op);
    io_uring_free_probe(probe);
    if (!all) return "the kernel's io_uring lacks an operation deja uses (recv, send, read, write, poll or cancel)";
    if (shared) return {};
    event_fd_ = ::eventfd(0, EFD_CLOEXEC);
    if (event_fd_ < 0) return std::string("eventfd failed: ") + std::strerror(errno);
    arm_event_fd();
    return {};
  }

  ~UringReactor() override {
    if (!initialised_) return;
    // (In shared mode no operation is left: the runtime destroyed every task first.)
    // Removed registrations whose poll has not reported its end yet: one more look frees them.
    for (int round = 0; removing_ != 0 && round < 10 && enable(); ++round) {
      __kernel_timespec ts{0, 10'000'000};
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      reap();
    }
    io_uring_queue_exit(&ring_);  // the kernel cancels what is left and drops its file references
    while (UringRegistration* reg = all_) {
      all_ = reg->next;
      delete reg;
    }
    if (event_fd_ >= 0) ::close(event_fd_);
  }

  // --- Reactor ---

  IoRegistration* register_fd(int fd) override {
    auto* reg = new UringRegistration;
    reg->fd = fd;
    reg->next = all_;
    if (all_) all_->prev = reg;
    all_ = reg;
    ++registrations_;
    arm_poll(*reg);
    return reg;
  }

  void deregister(IoRegistration* base) noexcept override {
    auto* reg = static_cast<UringRegistration*>(base);
    {
      std::lock_guard lock(reg->lock);
      while (Waiter* w = reg->readers.pop_front()) w->notify();
      while (Waiter* w = reg->writers.pop_front()) w->notify();
    }
    --registrations_;
    if (!reg->armed) {
      free_registration(reg);
      return;
    }
    reg->removing = true;
    ++removing_;
    if (io_uring_sqe* sqe = get_sqe()) {
      io_uring_prep_poll_remove(sqe, tagged(reg, kTagPoll));
      io_uring_sqe_set_data64(sqe, kIgnored);
    }
    // The poll holds the file: the caller closes the descriptor next, and a socket is only
    // released (its FIN sent, its port freed) once the kernel has let go, so tell it now.
    if (enable()) io_uring_submit_and_get_events(&ring_);
  }

  bool poll(int timeout_ms) override {
    if (!enable()) {
      throw UsageError(
          "deja: a runtime on io_uring runs on one thread, the first that ran it (IORING_SETUP_SINGLE_ISSUER); block_on was called on "
          "another");
    }
    if (!event_armed_) arm_event_fd();
    if (timeout_ms == 0 || io_uring_cq_ready(&ring_) != 0) {
      io_uring_submit_and_get_events(&ring_);
    } else if (timeout_ms < 0) {
      io_uring_submit_and_wait(&ring_, 1);
    } else {
      __kernel_timespec ts{timeout_ms / 1000, static_cast<long long>(timeout_ms % 1000) * 1'000'000};
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    }
    reap();
    return std::exchange(notified_, false);
  }

  void notify() noexcept override {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(event_fd_, &one, sizeof one);
  }

  bool has_io() const noexcept override {
    return registrations_ != 0 || operations_.load(std::memory_order_relaxed) != 0 || removing_ != 0;
  }

  IoUring* uring() noexcept override { return this; }

  // --- IoUring ---

  // In shared mode, called by WorkerRings on the worker that owns this ring.
  std::int32_t submit(Operation& op) noexcept override {
    if (!shared_ && current_uring() != this) return -EXDEV;
    op.ring_ = this;
    const auto sq = sq_guard();
    io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) return -EBUSY;
    switch (op.kind_) {
      case Operation::Kind::kRecv: io_uring_prep_recv(sqe, op.fd_, op.data_, op.size_, op.flags_); break;
      case Operation::Kind::kSend: io_uring_prep_send(sqe, op.fd_, op.data_, op.size_, op.flags_); break;
      case Operation::Kind::kRead: io_uring_prep_read(sqe, op.fd_, op.data_, op.size_, op.offset_); break;
      case Operation::Kind::kWrite: io_uring_prep_write(sqe, op.fd_, op.data_, op.size_, op.offset_); break;
    }
    io_uring_sqe_set_data64(sqe, tagged(&op, kTagOperation));
    op.sqe_pos_ = ring_.sq.sqe_tail - 1;  // io_uring_get_sqe handed out the slot before the tail
    // Handed to the kernel (and so to the reaper) only after this, by a submission made under
    // sq_lock_ (by this thread or by one cancelling another operation of this ring).
    op.state_.store(Operation::kInFlight, std::memory_order_release);
    operations_.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }

  // From any thread in shared mode (a task destroyed on another worker than the one it submitted
  // from, or by the runtime's destructor once the workers are gone).
  void cancel_and_wait(Operation& op) noexcept override {
    std::uint8_t expected = Operation::kInFlight;
    // Its task is going away: the completion must not wake it.
    if (!op.state_.compare_exchange_strong(expected, Operation::kAbandoned, std::memory_order_acq_rel)) {
      // The reaper is completing it right now (kNotifying): it is done in a moment.
      while (op.state_.load(std::memory_order_acquire) != Operation::kIdle) sched_yield();
      return;
    }
    {
      const auto sq = sq_guard();
      // Still queued in user space (the kernel has not seen it): it becomes a no-op, so a send
      // sends nothing and a recv takes nothing, as on epoll, where a cancelled wait made no call.
      // Only an operation the kernel already has needs the cancellation, and may still win it.
      if (!neutralise_unsubmitted(op)) {
        if (io_uring_sqe* sqe = get_sqe()) {
          io_uring_prep_cancel64(sqe, tagged(&op, kTagOperation), 0);
          io_uring_sqe_set_data64(sqe, kIgnored);
        }
      }
      if (shared_) io_uring_submit(&ring_);
    }
    if (shared_) {
      wait_abandoned_shared(op);
      return;
    }
    for (int round = 0; op.state_.load(std::memory_order_acquire) != Operation::kIdle; ++round) {
      if (round == kCancelRounds || !enable()) {
        std::fputs(
            "deja: an io_uring operation could not be cancelled and waited for (is the runtime being destroyed on a thread other "
            "than the one that ran it?); aborting rather than freeing a buffer the kernel may still write to\n",
            stderr);
        std::abort();
      }
      __kernel_timespec ts{kCancelRoundNs / 1'000'000'000, kCancelRoundNs % 1'000'000'000};  // (tv_nsec < 1 s)
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      reap();
    }
  }

  // --- shared mode (WorkerRings) ---

  int ring_fd() const noexcept { return ring_.ring_fd; }

  // Hands the queued submissions to the kernel, then collects what completed.
  void flush() noexcept {
    {
      const auto sq = sq_guard();
      if (io_uring_sq_ready(&ring_) != 0) {
        io_uring_submit(&ring_);
      } else if (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN) {
        io_uring_get_events(&ring_);  // completions wait for this thread to run them
      }
    }
    try_reap();
  }

  // Collects what completed, unless another thread is doing it right now. (The ring's head is
  // liburing's plain memory: even a look at whether anything is there is made under the lock.)
  void try_reap() noexcept {
    if (!cq_lock_.try_lock()) return;
    reap();
    cq_lock_.unlock();
  }

 private:
  std::unique_lock<std::mutex> sq_guard() noexcept { return shared_ ? std::unique_lock(sq_lock_) : std::unique_lock<std::mutex>(); }

  // Turns `op`'s submission into a no-op (its completion still comes, with 0) if it has not been
  // handed to the kernel yet: liburing makes slots [sqe_head, sqe_tail) visible to the kernel only
  // at the next submission. Under sq_lock_ in shared mode.
  bool neutralise_unsubmitted(Operation& op) noexcept {
    io_uring_sq& sq = ring_.sq;
    if (op.sqe_pos_ - sq.sqe_head >= sq.sqe_tail - sq.sqe_head) return false;
    io_uring_sqe* sqe = &sq.sqes[op.sqe_pos_ & sq.ring_mask];
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, tagged(&op, kTagOperation));
    return true;
  }

  // Waits, without holding a lock while it sleeps, until the reaper (this thread or another) has
  // let go of an abandoned operation. Its completion is posted by the thread that submitted it:
  // at once if that thread sleeps (the kernel wakes it for that), at its next system call if it
  // runs tasks, or already if it has exited.
  void wait_abandoned_shared(Operation& op) noexcept {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(kCancelRounds * kCancelRoundNs);
    while (op.state_.load(std::memory_order_acquire) != Operation::kIdle) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::fputs("deja: an io_uring operation could not be cancelled and waited for; aborting rather than freeing a buffer the kernel may still write to\n",
                   stderr);
        std::abort();
      }
      pollfd pfd{ring_.ring_fd, POLLIN, 0};  // readable while completions wait
      ::poll(&pfd, 1, kSharedCancelPollMs);
      try_reap();
    }
  }

  template <class T>
  static std::uint64_t tagged(T* p, std::uint64_t tag) noexcept {
    return reinterpret_cast<std::uintptr_t>(p) | tag;
  }

  // A ring made disabled is enabled by the first thread to use it, which becomes its only
  // submitter (SINGLE_ISSUER): the thread that runs the runtime, not the one that built it.
  bool enable() noexcept {
    if (!enabled_) {
      // io_uring_enable_rings is declared but not exported by Debian 12's liburing 2.3.
      if (::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) < 0) return false;
      enabled_ = true;
      owner_ = pthread_self();
      if (single_issuer_) io_uring_register_ring_fd(&ring_);  // per thread; failure only costs speed
      return true;
    }
    return !single_issuer_ || pthread_equal(owner_, pthread_self());
  }

  // The next free submission slot, handing the queued ones to the kernel if there is none.
  io_uring_sqe* get_sqe() noexcept {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr && enable()) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void arm_event_fd() noexcept {
    io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) return;  // poll() tries again
    io_uring_prep_read(sqe, event_fd_, &event_count_, sizeof event_count_, 0);
    io_uring_sqe_set_data64(sqe, kEventFdRead);
    event_armed_ = true;
  }

  void arm_poll(UringRegistration& reg) noexcept {
    io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) {
      // No slot even after a submission: report the fd in error, so its waiters make their
      // system call and see for themselves, rather than wait for an event that cannot come.
      report_epoll_event(reg, EPOLLERR | EPOLLHUP);
      return;
    }
    io_uring_prep_poll_multishot(sqe, reg.fd, POLLIN | POLLOUT | POLLRDHUP);
    io_uring_sqe_set_data64(sqe, tagged(&reg, kTagPoll));
    reg.armed = true;
  }

  void free_registration(UringRegistration* reg) noexcept {
    if (reg->prev) reg->prev->next = reg->next; else all_ = reg->next;
    if (reg->next) reg->next->prev = reg->prev;
    delete reg;
  }

  // Collects every completion there is (and those the kernel kept aside when the ring was full).
  void reap() noexcept {
    for (int round = 0; round < 4; ++round) {
      io_uring_cqe* cqe = nullptr;
      unsigned head = 0;
      unsigned seen = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        complete(cqe->user_data, cqe->res, cqe->flags);
      }
      io_uring_cq_advance(&ring_, seen);
      if (!io_uring_cq_has_overflow(&ring_)) return;
      io_uring_get_events(&ring_);
    }
  }

  void complete(std::uint64_t user_data, std::int32_t res, std::uint32_t flags) noexcept {
    if (user_data == kIgnored) return;
    if (user_data == kEventFdRead) {
      event_armed_ = false;
      notified_ = true;
      arm_event_fd();
      return;
    }
    switch (user_data & kTagMask) {
      case kTagOperation: {
        auto* op = reinterpret_cast<Operation*>(user_data & ~kTagMask);
        // Acquires the submitter's writes: the kernel orders them too, but no sanitizer sees that,
        // and ThreadSanitizer checks a read-modify-write before it acquires, so a load goes first.
        (void)op->state_.load(std::memory_order_acquire);
        const std::uint8_t was = op->state_.exchange(Operation::kNotifying, std::memory_order_acq_rel);
        op->result_ = res;
        operations_.fetch_sub(1, std::memory_order_relaxed);
        if (was == Operation::kInFlight) {
          op->undelivered_ = true;
          op->waiter_.notify();
        }
        else if (Operation::worth_handing_back(res) && op->abandoned_fn_ != nullptr) op->abandoned_fn_(op->abandoned_context_, static_cast<const std::byte*>(op->data_), res);
        // The last touch: from here the awaiter (or the destructor waiting) may free it.
        op->state_.store(Operation::kIdle, std::memory_order_release);
        return;
      }
      case kTagPoll: {
        auto* reg = reinterpret_cast<UringRegistration*>(user_data & ~kTagMask);
        const bool ended = (flags & IORING_CQE_F_MORE) == 0;
        if (ended) reg->armed = false;
        if (reg->removing) {
          if (ended) {
            --removing_;
            free_registration(reg);
          }
          return;
        }
        if (res > 0) report_epoll_event(*reg, static_cast<std::uint32_t>(res));
        if (!ended) return;
        // The kernel ended the poll on its own: on an error the fd is reported in error (its
        // waiters' system calls will say what), otherwise (the completion ring overflowed) it is
        // armed again.
        if (res < 0) report_epoll_event(*reg, EPOLLERR | EPOLLHUP);
        else arm_poll(*reg);
        return;
      }
      default:
        return;
    }
  }

  io_uring ring_{};
  bool shared_ = false;
  // Shared mode only: the submission queue (liburing's view of it is plain memory), and reaping.
  std::mutex sq_lock_;
  std::mutex cq_lock_;
  bool initialised_ = false;
  bool single_issuer_ = false;
  bool enabled_ = true;
  pthread_t owner_{};
  int event_fd_ = -1;
  std::uint64_t event_count_ = 0;
  bool event_armed_ = false;
  bool notified_ = false;
  std::size_t registrations_ = 0;
  std::size_t removing_ = 0;
  std::atomic<std::size_t> operations_{0};
  UringRegistration* all_ = nullptr;
};

std::unique_ptr<Reactor> make_uring_reactor(std::uint32_t entries, std::string& why_not) {
  auto reactor = std::make_unique<UringReactor>();
  why_not = reactor->init(entries, false);
  if (!why_not.empty()) return nullptr;
  return reactor;
}

namespace {

// The multi-thread runtime's io_uring: what RuntimeContext::uring points to, handing each
// operation to the ring of the worker that awaits it.
class WorkerRingsImpl final : public WorkerRings, public IoUring {
 public:
  WorkerRingsImpl(std::uint32_t (*current_worker)(const void*) noexcept, const void* context) noexcept
      : current_worker_(current_worker), context_(context) {}

  std::string init(std::uint32_t workers, std::uint32_t entries) {
    rings_.reserve(workers);
    for (std::uint32_t i = 0; i < workers; ++i) {
      auto ring = std::make_unique<UringReactor>();
      if (std::string why_not = ring->init(entries, true); !why_not.empty()) return why_not;
      rings_.push_back(std::move(ring));
    }
    return {};
  }

  IoUring* uring() noexcept override { return this; }
  int ring_fd(std::uint32_t worker) const noexcept override { return rings_[worker]->ring_fd(); }
  void flush(std::uint32_t worker) noexcept override { rings_[worker]->flush(); }
  void reap(std::uint32_t worker) noexcept override { rings_[worker]->try_reap(); }

 protected:
  std::int32_t submit(Operation& op) noexcept override {
    const std::uint32_t worker = current_worker_(context_);
    if (worker >= rings_.size()) return -EXDEV;  // not on one of this runtime's workers
    return rings_[worker]->submit(op);
  }
  // Never called: an operation belongs to a worker's ring from the moment it is in flight.
  void cancel_and_wait(Operation&) noexcept override {}

 private:
  std::uint32_t (*current_worker_)(const void*) noexcept;
  const void* context_;
  std::vector<std::unique_ptr<UringReactor>> rings_;
};

}  // namespace

std::unique_ptr<WorkerRings> make_worker_rings(std::uint32_t workers, std::uint32_t entries,
                                               std::uint32_t (*current_worker)(const void*) noexcept, const void* context,
                                               std::string& why_not) {
  auto rings = std::make_unique<WorkerRingsImpl>(current_worker, context);
  why_not = rings->init(workers, entries);
  if (!why_not.empty()) return nullptr;
  return rings;
}

void report_uring_fallback(const std::string& why_not) noexcept {
  static std::atomic<bool> reported{false};
  if (reported.exchange(true)) return;
  std::fprintf(stderr, "deja: io_uring is unavailable (%s); using epoll\n", why_not.c_str());
}

}  // namespace detail
}  // namespace deja
