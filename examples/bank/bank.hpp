// A small bank service with a classic check-then-act race across an await: the balance check and
// the debit are separated by a call that suspends, so two transfers can both pass the check.
// BankWithLock holds a deja::Mutex across check and act. The same code runs in production and
// under the simulator.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "deja/deja.hpp"

namespace bank {

struct Accounts {
  std::vector<std::int64_t> balance;
  std::int64_t total() const {
    std::int64_t t = 0;
    for (auto b : balance) t += b;
    return t;
  }
};

// Stands in for a call to another service (a fraud check, say): it takes a little while.
inline deja::Task<void> fraud_check() { co_await deja::sleep(std::chrono::microseconds(100 + deja::random_below(900))); }

inline deja::Task<bool> transfer_racy(std::shared_ptr<Accounts> a, std::size_t from, std::size_t to, std::int64_t amount) {
  if (a->balance[from] < amount) co_return false;
  co_await fraud_check();  // BUG: the balance may change while we wait
  a->balance[from] -= amount;
  a->balance[to] += amount;
  DEJA_ASSERT(a->balance[from] >= 0);
  co_return true;
}

inline deja::Task<bool> transfer_locked(std::shared_ptr<Accounts> a, std::shared_ptr<deja::Mutex> lock, std::size_t from, std::size_t to,
                                        std::int64_t amount) {
  auto guard = co_await lock->lock();
  if (a->balance[from] < amount) co_return false;
  co_await fraud_check();
  a->balance[from] -= amount;
  a->balance[to] += amount;
  DEJA_ASSERT(a->balance[from] >= 0);
  co_return true;
}

inline deja::Task<int> client(std::shared_ptr<Accounts> a, std::shared_ptr<deja::Mutex> lock, int transfers) {
  int done = 0;
  for (int i = 0; i < transfers; ++i) {
    const auto from = static_cast<std::size_t>(deja::random_below(a->balance.size()));
    const auto to = (from + 1 + static_cast<std::size_t>(deja::random_below(a->balance.size() - 1))) % a->balance.size();
    const auto amount = static_cast<std::int64_t>(1 + deja::random_below(40));
    const bool ok = lock ? co_await transfer_locked(a, lock, from, to, amount) : co_await transfer_racy(a, from, to, amount);
    done += ok;
  }
  co_return done;
}

// Three clients move money between three accounts; the total must be kept and no balance may go
// negative. With `use_lock` false this is the racy version.
inline deja::Task<void> run_bank(bool use_lock) {
  auto accounts = std::make_shared<Accounts>(Accounts{{100, 100, 100}});
  auto lock = use_lock ? std::make_shared<deja::Mutex>() : nullptr;
  std::vector<deja::JoinHandle<int>> clients;
  for (int c = 0; c < 3; ++c) clients.push_back(deja::spawn(client(accounts, lock, 4)));
  for (auto& c : clients) co_await c;
  DEJA_ASSERT(accounts->total() == 300);
}

}  // namespace bank
