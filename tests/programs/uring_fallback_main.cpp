// A runtime (current-thread or multi-thread) asked for io_uring where the kernel refuses it falls back to epoll, says so once on
// stderr, and serves TCP as usual. The refusal is real: a seccomp filter makes io_uring_setup fail
// with ENOSYS, as Docker's default profile and kernels without io_uring do.
//
// Its own program (not a Catch2 case), since a seccomp filter cannot be removed from a process.
// Exit status 0 is a pass; anything else prints what failed.
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "deja/deja.hpp"
#include "deja/net.hpp"

namespace {

int failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stdout, "FAILED: %s\n", what);
    ++failures;
  }
}

bool refuse_io_uring() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<__u32>(offsetof(seccomp_data, nr))),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{static_cast<unsigned short>(std::size(filter)), filter};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
}

deja::Task<std::string> echo_once() {
  auto listener = deja::net::TcpListener::bind({deja::net::IpAddr::v4_loopback(), 0});
  auto client = co_await deja::net::TcpStream::connect(listener.local_addr());
  auto accepted = co_await listener.accept();
  const std::string message = "through epoll";
  co_await client.write_all(deja::net::as_bytes(message));
  std::string echoed(message.size(), '\0');
  co_await accepted.stream.read_exact(std::span<std::byte>(reinterpret_cast<std::byte*>(echoed.data()), echoed.size()));
  co_return echoed;
}

}  // namespace

int main() {
  if (!refuse_io_uring()) {
    std::perror("uring-fallback: installing the seccomp filter");
    return 1;
  }
  // stderr goes to a file, to count what the runtime says.
  char path[] = "/tmp/deja-uring-fallback-XXXXXX";
  const int log = ::mkstemp(path);
  if (log < 0 || std::fflush(stderr) != 0 || ::dup2(log, STDERR_FILENO) < 0) {
    std::perror("uring-fallback: redirecting stderr");
    return 1;
  }
  for (int i = 0; i < 2; ++i) {
    deja::RuntimeOptions options;
    options.io = deja::IoBackend::kUring;
    deja::CurrentThreadRuntime rt(options);
    check(rt.io_backend() == deja::IoBackend::kEpoll, "a runtime asked for io_uring where it is refused uses epoll");
    check(rt.context()->uring == nullptr, "no IoUring is offered on the epoll fallback");
    check(rt.block_on(echo_once()) == "through epoll", "TCP works on the fallback");
  }
  {
    deja::MultiThreadOptions options;
    options.workers = 2;
    options.io = deja::IoBackend::kUring;
    deja::MultiThreadRuntime rt(options);
    check(rt.io_backend() == deja::IoBackend::kEpoll, "a multi-thread runtime asked for io_uring where it is refused uses epoll");
    check(rt.context()->uring == nullptr, "no IoUring is offered on the multi-thread runtime's epoll fallback");
    check(rt.block_on(echo_once()) == "through epoll", "TCP works on the multi-thread runtime's fallback");
  }
  std::fflush(stderr);
  std::ifstream in(path);
  const std::string said((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ::unlink(path);
  const std::string expected = "deja: io_uring is unavailable (io_uring_setup failed: Function not implemented); using epoll\n";
  check(said == expected, "the fallback is reported once, with the reason");
  if (said != expected) std::fprintf(stdout, "stderr was:\n%s", said.c_str());
  if (failures == 0) std::fprintf(stdout, "uring-fallback: passed (three runtimes, one of them multi-thread, fell back; one message)\n");
  return failures == 0 ? 0 : 1;
}
