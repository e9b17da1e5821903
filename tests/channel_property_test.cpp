// rapidcheck: under random interleavings of sends, receives, sender drops, closes and aborts of
// blocked tasks, an mpsc channel delivers every acknowledged value exactly once, in each sender's
// order, and delivers nothing that was not acknowledged.
#include <catch2/catch.hpp>
#include <rapidcheck.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "deja/deja.hpp"

namespace {

constexpr int kSenders = 3;

struct World {
  std::vector<std::optional<deja::mpsc::Sender<int>>> senders;
  std::vector<int> next_value = std::vector<int>(kSenders, 0);
  std::set<int> acknowledged;
  std::vector<int> received;
};

deja::Task<void> send_one(deja::mpsc::Sender<int> tx, int value, std::shared_ptr<World> w) {
  const std::error_code ec = co_await tx.send(value);
  if (!ec) w->acknowledged.insert(value);
}

deja::Task<void> recv_one(deja::mpsc::Receiver<int>* rx, std::shared_ptr<World> w) {
  if (auto v = co_await rx->recv()) w->received.push_back(*v);
}

deja::Task<bool> run_ops(std::vector<std::pair<int, int>> ops, std::size_t capacity) {
  auto [tx, rx] = deja::mpsc::channel<int>(capacity);
  auto w = std::make_shared<World>();
  for (int s = 0; s < kSenders; ++s) w->senders.emplace_back(tx);
  { auto original = std::move(tx); }
  std::vector<deja::JoinHandle<void>> sends, recvs;
  for (auto [op, arg] : ops) {
    switch (op) {
      case 0:
      case 1:
        if (auto& s = w->senders[static_cast<std::size_t>(arg)]) {
          const int value = arg * 100000 + w->next_value[static_cast<std::size_t>(arg)]++;
          sends.push_back(deja::spawn(send_one(*s, value, w)));
        }
        break;
      case 2: recvs.push_back(deja::spawn(recv_one(&rx, w))); break;
      case 3: w->senders[static_cast<std::size_t>(arg)].reset(); break;
      case 4:
        for (auto& h : sends) {
          if (!h.is_finished()) {
            h.abort();
            break;
          }
        }
        break;
      case 5:
        for (auto& h : recvs) {
          if (!h.is_finished()) {
            h.abort();
            break;
          }
        }
        break;
      default: co_await deja::yield_now(); break;
    }
    co_await deja::yield_now();
  }
  // Abort what is still pending and wait until it is gone (a receive task borrows `rx`, so it
  // must not outlive this frame), drop the senders, then drain.
  for (auto& h : recvs) h.abort();
  for (auto& h : sends) h.abort();
  for (auto* handles : {&recvs, &sends}) {
    for (auto& h : *handles) {
      try {
        co_await h;
      } catch (const deja::TaskCancelled&) {
      }
    }
  }
  for (auto& s : w->senders) s.reset();
  while (auto v = co_await rx.recv()) w->received.push_back(*v);

  // Exactly once, and only what was acknowledged.
  std::vector<int> sorted = w->received;
  std::sort(sorted.begin(), sorted.end());
  RC_ASSERT(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
  RC_ASSERT(std::set<int>(sorted.begin(), sorted.end()) == w->acknowledged);
  // In each sender's order.
  std::map<int, int> last;
  for (int v : w->received) {
    const int sender = v / 100000;
    auto it = last.find(sender);
    RC_ASSERT(it == last.end() || it->second < v);
    last[sender] = v;
  }
  co_return true;
}

}  // namespace

TEST_CASE("mpsc never loses, duplicates or reorders acknowledged values under random interleavings") {
  const bool ok = rc::check("mpsc channel property", [] {
    const auto ops = *rc::gen::container<std::vector<std::pair<int, int>>>(
        rc::gen::pair(rc::gen::inRange(0, 7), rc::gen::inRange(0, kSenders)));
    const auto capacity = *rc::gen::inRange<std::size_t>(1, 4);
    RC_ASSERT(deja::block_on(run_ops(ops, capacity)));
  });
  REQUIRE(ok);
}
