// deja::CancellationToken: a cooperative cancellation signal shared by copies of a token.
// Cancelling a token cancels its child tokens (recursively), never its parent.
#pragma once

#include <atomic>
#include <coroutine>
#include <memory>
#include <mutex>
#include <vector>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"

namespace deja {

class CancellationToken {
  // Every node of one token tree shares one lock, so cancelling walks the tree without lock
  // ordering between parents and children.
  struct Node {
    explicit Node(std::shared_ptr<std::mutex> l, std::shared_ptr<Node> p) : tree_lock(std::move(l)), parent(std::move(p)) {}
    ~Node() {
      if (!parent) return;
      std::lock_guard lock(*tree_lock);
      auto& siblings = parent->children;
      for (auto it = siblings.begin(); it != siblings.end(); ++it) {
        if (*it == this) {
          siblings.erase(it);
          break;
        }
      }
    }
    std::shared_ptr<std::mutex> tree_lock;
    std::shared_ptr<Node> parent;
    std::vector<Node*> children;  // raw: a child unlinks itself when it dies
    std::atomic<bool> cancelled{false};
    detail::WaitList waiters;
  };

 public:
  CancellationToken() : node_(std::make_shared<Node>(std::make_shared<std::mutex>(), nullptr)) {}

  // A token cancelled whenever this one is (and on its own cancel(), without affecting this one).
  CancellationToken child_token() const {
    auto child = std::make_shared<Node>(node_->tree_lock, node_);
    std::lock_guard lock(*node_->tree_lock);
    child->cancelled.store(node_->cancelled.load(std::memory_order_relaxed), std::memory_order_relaxed);
    node_->children.push_back(child.get());
    return CancellationToken(std::move(child));
  }

  // Cancels this token and all its descendants, waking every task waiting on them. Idempotent.
  void cancel() noexcept {
    std::vector<detail::TaskHeader*> wake;
    {
      std::lock_guard lock(*node_->tree_lock);
      cancel_locked(node_.get(), wake);
    }
    for (auto* t : wake) detail::wake(t);
  }

  bool is_cancelled() const noexcept { return node_->cancelled.load(std::memory_order_acquire); }

  class CancelledAwaiter {
   public:
    explicit CancelledAwaiter(std::shared_ptr<Node> n) noexcept : node_(std::move(n)) {}
    CancelledAwaiter(const CancelledAwaiter&) = delete;
    CancelledAwaiter& operator=(const CancelledAwaiter&) = delete;
    ~CancelledAwaiter() {
      if (!parked_) return;
      std::lock_guard lock(*node_->tree_lock);
      if (waiter_.linked) node_->waiters.remove(waiter_);
    }
    bool await_ready() const noexcept { return node_->cancelled.load(std::memory_order_acquire); }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = detail::park_current(h, "CancellationToken::cancelled");
      std::lock_guard lock(*node_->tree_lock);
      if (node_->cancelled.load(std::memory_order_relaxed)) return false;
      node_->waiters.push_back(waiter_);
      parked_ = true;
      return true;
    }
    void await_resume() noexcept { parked_ = false; }

   private:
    std::shared_ptr<Node> node_;
    detail::Waiter waiter_;
    bool parked_ = false;
  };

  // Completes once the token is cancelled.
  CancelledAwaiter cancelled() const noexcept { return CancelledAwaiter{node_}; }

 private:
  explicit CancellationToken(std::shared_ptr<Node> n) noexcept : node_(std::move(n)) {}

  static void cancel_locked(Node* n, std::vector<detail::TaskHeader*>& wake) {
    if (n->cancelled.exchange(true, std::memory_order_acq_rel)) return;
    while (auto* w = n->waiters.pop_front()) wake.push_back(w->task);
    for (Node* child : n->children) cancel_locked(child, wake);
  }

  std::shared_ptr<Node> node_;
};

}  // namespace deja
