// deja::CancellationToken: a cooperative cancellation signal, like tokio_util's. Copies share one
// state; cancel() wakes every task in `co_await token.cancelled()` and cancels child tokens
// (recursively), never the parent.
//
//   deja::CancellationToken root;
//   auto child = root.child_token();
//   co_await child.cancelled();   // completes once root.cancel() or child.cancel() is called
//
// A child keeps its parent's state alive (not the other way round); a child dropped before it is
// cancelled unlinks itself from its parent, so short-lived children of a long-lived token do not
// accumulate. All tokens of one tree share the root's lock, so cancelling walks the tree (without
// recursion) under one lock. Destroying a task suspended in cancelled() (abort) unlinks its wait.
// A moved-from token may only be assigned to or destroyed; anything else throws UsageError.
#pragma once

#include <atomic>
#include <cassert>
#include <coroutine>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"
#include "deja/errors.hpp"

namespace deja {

namespace detail {

// One token's shared state: a node of its tree. Links and waiters are guarded by root->tree_lock.
struct CancelNode {
  std::atomic<std::uint32_t> refs{1};  // tokens, awaiters and children holding this node
  std::atomic<bool> cancelled{false};  // set under the tree lock, read anywhere
  CancelNode* root = this;             // whose tree_lock guards this node
  CancelNode* parent = nullptr;        // holds a reference on it
  CancelNode* first_child = nullptr;   // children do not hold references from here
  CancelNode* prev_sibling = nullptr;
  CancelNode* next_sibling = nullptr;
  WaitList waiters;      // suspended cancelled() awaits
  std::mutex tree_lock;  // used on the root only
};

inline void retain(CancelNode* n) noexcept { n->refs.fetch_add(1, std::memory_order_relaxed); }
// Drops a reference; the last one unlinks the node from its parent and frees it (and so on up).
void release(CancelNode* n) noexcept;
CancelNode* make_child(CancelNode* parent);
// Cancels `n` and its whole subtree, waking their waiters. Idempotent.
void cancel(CancelNode* n) noexcept;

}  // namespace detail

class CancellationToken {
 public:
  // A new token, with no parent, not cancelled.
  CancellationToken() : node_(new detail::CancelNode()) {}
  CancellationToken(const CancellationToken& other) noexcept : node_(other.node_) {
    if (node_) detail::retain(node_);
  }
  CancellationToken(CancellationToken&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {}
  CancellationToken& operator=(CancellationToken other) noexcept {
    std::swap(node_, other.node_);
    return *this;
  }
  ~CancellationToken() {
    if (node_) detail::release(node_);
  }

  // Cancels this token and its descendants and wakes every task waiting on them. Idempotent.
  void cancel() { detail::cancel(node("cancel")); }

  bool is_cancelled() const { return node("is_cancelled")->cancelled.load(std::memory_order_acquire); }

  // A token cancelled whenever this one is (already cancelled if this one is); cancelling it
  // does not cancel this one.
  CancellationToken child_token() const { return CancellationToken(detail::make_child(node("child_token"))); }

  // Awaitable of cancelled(): completes once the token is cancelled. Holds a reference to the
  // token's state, so it may outlive the token it came from.
  class [[nodiscard]] CancelledAwaiter {
   public:
    explicit CancelledAwaiter(detail::CancelNode* n) noexcept : node_(n) { detail::retain(n); }
    // Movable until awaited (the combinators take awaitables by value).
    CancelledAwaiter(CancelledAwaiter&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {
      assert(!other.suspended_);
    }
    CancelledAwaiter(const CancelledAwaiter&) = delete;
    CancelledAwaiter& operator=(const CancelledAwaiter&) = delete;
    CancelledAwaiter& operator=(CancelledAwaiter&&) = delete;
    ~CancelledAwaiter() {
      if (suspended_) {
        std::lock_guard guard(node_->root->tree_lock);
        if (waiter_.linked) node_->waiters.remove(waiter_);
      }
      if (node_) detail::release(node_);
    }

    bool await_ready() const noexcept { return node_->cancelled.load(std::memory_order_acquire); }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = detail::park_current(h, "cancellation token");
      std::lock_guard guard(node_->root->tree_lock);
      if (node_->cancelled.load(std::memory_order_relaxed)) return false;
      suspended_ = true;
      node_->waiters.push_back(waiter_);
      return true;
    }
    void await_resume() noexcept { suspended_ = false; }

   private:
    detail::CancelNode* node_;
    detail::Waiter waiter_;
    bool suspended_ = false;
  };

  CancelledAwaiter cancelled() const { return CancelledAwaiter(node("cancelled")); }

 private:
  explicit CancellationToken(detail::CancelNode* n) noexcept : node_(n) {}

  detail::CancelNode* node(const char* what) const {
    if (node_ == nullptr) throw UsageError(std::string("deja::CancellationToken: ") + what + " on a moved-from token");
    return node_;
  }

  detail::CancelNode* node_;
};

}  // namespace deja
