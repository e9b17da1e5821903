// CancellationToken's tree: creating children, cancelling subtrees, and unlinking dead nodes.
#include "deja/sync/cancellation_token.hpp"

namespace deja::detail {

CancelNode* make_child(CancelNode* parent) {
  auto* child = new CancelNode();
  child->root = parent->root;
  child->parent = parent;
  retain(parent);
  std::lock_guard guard(parent->root->tree_lock);
  child->cancelled.store(parent->cancelled.load(std::memory_order_relaxed), std::memory_order_relaxed);
  child->next_sibling = parent->first_child;
  if (parent->first_child) parent->first_child->prev_sibling = child;
  parent->first_child = child;
  return child;
}

namespace {

// Marks one node cancelled and wakes its waiters (tree lock held).
void cancel_one(CancelNode* n) noexcept {
  n->cancelled.store(true, std::memory_order_release);
  while (Waiter* w = n->waiters.pop_front()) w->notify();
}

// The first sibling from `n` on that is not cancelled yet. A cancelled node's subtree is all
// cancelled already (children of a cancelled node are born cancelled), so it is skipped whole.
CancelNode* first_live(CancelNode* n) noexcept {
  while (n && n->cancelled.load(std::memory_order_relaxed)) n = n->next_sibling;
  return n;
}

}  // namespace

void cancel(CancelNode* top) noexcept {
  if (top->cancelled.load(std::memory_order_acquire)) return;
  std::lock_guard guard(top->root->tree_lock);
  if (top->cancelled.load(std::memory_order_relaxed)) return;
  // Pre-order walk of the live part of the subtree, without recursion or allocation.
  cancel_one(top);
  CancelNode* cur = top;
  for (;;) {
    if (CancelNode* child = first_live(cur->first_child)) {
      cancel_one(child);
      cur = child;
      continue;
    }
    // Climb until a live sibling is found, or back at the top.
    for (;;) {
      if (cur == top) return;
      if (CancelNode* sibling = first_live(cur->next_sibling)) {
        cancel_one(sibling);
        cur = sibling;
        break;
      }
      cur = cur->parent;
    }
  }
}

void release(CancelNode* n) noexcept {
  while (n != nullptr && n->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    // No child (each holds a reference) and no waiter (each awaiter holds one) is left.
    CancelNode* parent = n->parent;
    if (parent != nullptr) {
      std::lock_guard guard(n->root->tree_lock);
      if (n->prev_sibling) n->prev_sibling->next_sibling = n->next_sibling;
      else parent->first_child = n->next_sibling;
      if (n->next_sibling) n->next_sibling->prev_sibling = n->prev_sibling;
    }
    assert(n->first_child == nullptr && n->waiters.empty());
    delete n;
    n = parent;  // drop the reference the child held
  }
}

}  // namespace deja::detail
