// The README's example: spawn tasks, sleep, race a timeout, and join them, on one thread.
#include <cstdio>
#include <vector>

#include "deja/deja.hpp"

using namespace std::chrono_literals;

deja::Task<int> fetch(int id) {
  co_await deja::sleep(std::chrono::milliseconds(10 * id));  // stands in for real I/O
  co_return id * id;
}

deja::Task<int> main_task() {
  std::vector<deja::JoinHandle<int>> jobs;
  for (int id = 1; id <= 5; ++id) jobs.push_back(deja::spawn(fetch(id)));
  int total = 0;
  for (auto& job : jobs) total += co_await job;
  try {
    co_await deja::timeout(20ms, fetch(100));  // would take a second
  } catch (const deja::TimedOut&) {
    std::puts("fetch(100) timed out and was cancelled");
  }
  co_return total;
}

int main() { std::printf("total = %d\n", deja::block_on(main_task())); }
