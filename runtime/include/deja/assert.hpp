// DEJA_ASSERT: an assertion that stays on in release builds and that the simulator counts as a
// failed run (with a replay line), even if the AssertionFailed it throws is caught.
#pragma once

#include "deja/errors.hpp"

namespace deja::detail {
[[noreturn]] void assertion_failed(const char* expr, const char* file, int line);
}

#define DEJA_ASSERT(cond) ((cond) ? static_cast<void>(0) : ::deja::detail::assertion_failed(#cond, __FILE__, __LINE__))
