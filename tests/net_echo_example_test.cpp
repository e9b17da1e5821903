// The echo example (examples/echo) on the production runtime over 127.0.0.1.
#include <catch2/catch.hpp>

#include "../examples/echo/echo.hpp"
#include "net_test_support.hpp"

namespace {

deja::Task<void> echo_example(std::uint64_t* bytes) {
  *bytes = co_await echo::run_local(net_test::kLoopbackAnyPort, 16, 50, 100);
}

}  // namespace

TEST_CASE("echo example serves concurrent clients on 127.0.0.1 and every reply matches", "[net]") {
  std::uint64_t bytes = 0;
  net_test::run(echo_example(&bytes));
  REQUIRE(bytes == 16u * 50u * 100u);
}
