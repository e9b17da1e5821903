// The exceptions deja throws at its API boundary, so callers can catch exactly what they mean.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

namespace deja {

// Misuse of the API: awaiting a moved-from Task, awaiting a JoinHandle twice, spawning with no
// runtime current, a negative or overflowing duration. These are bugs in the caller.
class UsageError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// Thrown by awaiting the JoinHandle of a task that was aborted (or destroyed by runtime shutdown)
// before it finished, as Tokio's JoinError::Cancelled.
class TaskCancelled : public std::runtime_error {
 public:
  TaskCancelled() : std::runtime_error("deja: the task was cancelled before it finished") {}
};

// Thrown by deja::timeout when the deadline passes first.
class TimedOut : public std::system_error {
 public:
  TimedOut() : std::system_error(std::make_error_code(std::errc::timed_out), "deja::timeout") {}
};

// A bounded resource of the runtime (task count, queue, registrations) is exhausted.
class CapacityExceeded : public std::length_error {
 public:
  using std::length_error::length_error;
};

// Thrown by a failed DEJA_ASSERT.
class AssertionFailed : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

}  // namespace deja
