#include "cmd/cli/signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>

namespace cdi::cli {
namespace {

std::atomic<CancelToken*> g_token{nullptr};
std::atomic<int> g_signals{0};

void Say(const char* message, size_t length) {
  ssize_t ignored = write(STDERR_FILENO, message, length);
  (void)ignored;
}

void OnSignal(int) {
  // Only async-signal-safe calls here: atomics and write(2). A later signal
  // never exits: leaving now would skip the removal of a partial file or the
  // zeroing of a device's ends, and leave a target that looks complete.
  if (g_signals.fetch_add(1) > 0) {
    static const char kAgain[] =
        "\nstill cleaning up (this takes a second or two); SIGKILL stops it, but leaves what "
        "was written\n";
    Say(kAgain, sizeof kAgain - 1);
    return;
  }
  if (CancelToken* token = g_token.load()) token->Cancel();
  static const char kFirst[] = "\ncancelling: cleaning up\n";
  Say(kFirst, sizeof kFirst - 1);
}

}  // namespace

void CancelOnSignals(CancelToken* token) {
  g_token.store(token);
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

}  // namespace cdi::cli
