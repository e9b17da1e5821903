// rapidcheck: under random interleavings of producer tasks (each sending an increasing sequence),
// receives (awaited in tasks, and try_recv), sender drops, close, receiver drop, and aborts of
// tasks blocked in send or recv, an mpsc channel receives every value at most once, each
// producer's values in order, and nothing that a successful send acknowledged is lost while the
// receiver lives.
#include <catch2/catch.hpp>
#include <rapidcheck.h>

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <vector>

#include "deja/deja.hpp"
#include "deja/sync/mpsc.hpp"

namespace {

constexpr int kProducers = 3;
constexpr int kStride = 1'000'000;  // value = producer * kStride + sequence number

enum class OpKind {
  kCredit,        // let producer `arg` send 1..3 more values (starting it if it is not running)
  kSpawnReceive,  // a task that awaits one recv
  kTryRecv,       // try_recv from the driver
  kAbortProducer,
  kAbortReceive,  // the oldest unfinished receiving task
  kStopProducer,  // the producer exits after its current send, dropping its Sender
  kDropSpare,     // the driver's own Sender
  kClose,         // Receiver::close
  kDropReceiver,  // aborts the receiving tasks first (they borrow the receiver)
  kYield,         // 1..3 extra turns for everyone
  kCount,
};

struct Op {
  OpKind kind;
  int arg;
};

std::ostream& operator<<(std::ostream& os, OpKind kind) {
  static const char* const names[] = {"credit", "spawn_receive", "try_recv", "abort_producer", "abort_receive",
                                      "stop_producer", "drop_spare", "close", "drop_receiver", "yield"};
  const auto i = static_cast<std::size_t>(kind);
  return os << (i < std::size(names) ? names[i] : "?");
}

std::ostream& operator<<(std::ostream& os, const Op& op) { return os << op.kind << "(" << op.arg << ")"; }

struct World {
  std::optional<deja::mpsc::Sender<int>> spare;
  std::optional<deja::mpsc::Receiver<int>> rx;
  std::array<int, kProducers> credits{};
  std::array<int, kProducers> next_seq{};
  std::array<bool, kProducers> stop{};
  std::vector<int> acknowledged;
  std::vector<int> received;  // in the order the receives returned
  bool dropped_receiver = false;
};

deja::Task<void> producer(int p, deja::mpsc::Sender<int> tx, std::shared_ptr<World> w) {
  const auto i = static_cast<std::size_t>(p);
  for (;;) {
    if (w->stop[i]) co_return;
    if (w->credits[i] == 0) {
      co_await deja::yield_now();
      continue;
    }
    const int value = p * kStride + w->next_seq[i]++;
    const std::error_code ec = co_await tx.send(value);
    if (ec) co_return;  // closed: nothing was enqueued
    // Recorded in the same step as the send completed: an abort cannot fall in between.
    w->acknowledged.push_back(value);
    --w->credits[i];
  }
}

deja::Task<void> receive_one(std::shared_ptr<World> w) {
  if (auto v = co_await w->rx->recv()) w->received.push_back(*v);
}

struct Outcome {
  std::vector<int> acknowledged;
  std::vector<int> received;
  bool dropped_receiver;
};

deja::Task<Outcome> run(std::vector<Op> ops, std::size_t capacity, bool unbounded) {
  auto w = std::make_shared<World>();
  {
    auto [tx, rx] = unbounded ? deja::mpsc::unbounded_channel<int>() : deja::mpsc::channel<int>(capacity);
    w->spare.emplace(std::move(tx));
    w->rx.emplace(std::move(rx));
  }
  std::array<deja::JoinHandle<void>, kProducers> producers;
  std::vector<deja::JoinHandle<void>> receives;
  auto abort_receives = [&] {
    for (auto& h : receives) h.abort();
  };

  for (const Op& op : ops) {
    const auto p = static_cast<std::size_t>(op.arg % kProducers);
    switch (op.kind) {
      case OpKind::kCredit:
        w->credits[p] += 1 + op.arg % 3;
        if ((!producers[p].valid() || producers[p].is_finished()) && w->spare && !w->stop[p]) {
          producers[p] = deja::spawn(producer(static_cast<int>(p), *w->spare, w));
        }
        break;
      case OpKind::kSpawnReceive:
        if (w->rx) receives.push_back(deja::spawn(receive_one(w)));
        break;
      case OpKind::kTryRecv:
        if (w->rx) {
          if (auto v = w->rx->try_recv()) w->received.push_back(*v);
        }
        break;
      case OpKind::kAbortProducer: producers[p].abort(); break;
      case OpKind::kAbortReceive:
        for (auto& h : receives) {
          if (!h.is_finished()) {
            h.abort();
            break;
          }
        }
        break;
      case OpKind::kStopProducer: w->stop[p] = true; break;
      case OpKind::kDropSpare: w->spare.reset(); break;
      case OpKind::kClose:
        if (w->rx) w->rx->close();
        break;
      case OpKind::kDropReceiver:
        if (w->rx) {
          abort_receives();
          co_await deja::yield_now();  // aborted tasks that were already queued die now
          w->rx.reset();
          w->dropped_receiver = true;
        }
        break;
      case OpKind::kYield:
      case OpKind::kCount:
        for (int k = 0; k <= op.arg % 3; ++k) co_await deja::yield_now();
        break;
    }
    co_await deja::yield_now();
  }

  // Wind down: abort everything still blocked, drop every sender, then drain what is left.
  abort_receives();
  for (auto& h : producers) h.abort();
  w->spare.reset();
  co_await deja::yield_now();
  if (w->rx) {
    while (auto v = co_await w->rx->recv()) w->received.push_back(*v);
  }
  co_return Outcome{w->acknowledged, w->received, w->dropped_receiver};
}

}  // namespace

TEST_CASE("mpsc receives every acknowledged value once, in each producer's order, under random interleavings") {
  const bool ok = rc::check("mpsc interleavings", [] {
    const auto ops = *rc::gen::container<std::vector<Op>>(rc::gen::build<Op>(
        rc::gen::set(&Op::kind, rc::gen::cast<OpKind>(rc::gen::inRange(0, static_cast<int>(OpKind::kCount)))),
        rc::gen::set(&Op::arg, rc::gen::inRange(0, 6))));
    const auto capacity = *rc::gen::inRange<std::size_t>(1, 5);
    const bool unbounded = *rc::gen::element(false, false, true);

    const Outcome out = deja::block_on(run(ops, capacity, unbounded));

    // At most once.
    std::vector<int> sorted = out.received;
    std::sort(sorted.begin(), sorted.end());
    RC_ASSERT(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
    // Only what a successful send acknowledged (a send that did not complete enqueued nothing)...
    const std::set<int> acked(out.acknowledged.begin(), out.acknowledged.end());
    const std::set<int> got(sorted.begin(), sorted.end());
    RC_ASSERT(std::includes(acked.begin(), acked.end(), got.begin(), got.end()));
    // ...and all of it, unless the receiver was dropped (close keeps queued values receivable).
    if (!out.dropped_receiver) RC_ASSERT(got == acked);
    // Each producer's values in the order it sent them.
    std::map<int, int> last;
    for (int v : out.received) {
      auto it = last.find(v / kStride);
      RC_ASSERT(it == last.end() || it->second < v);
      last[v / kStride] = v;
    }
  });
  REQUIRE(ok);
}
