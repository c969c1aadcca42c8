#include "cmd/cli/signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>

#include "cmd/cli/exit_codes.h"

namespace cdi::cli {
namespace {

std::atomic<CancelToken*> g_token{nullptr};
std::atomic<int> g_signals{0};

void OnSignal(int) {
  // Only async-signal-safe calls here: an atomic store and write(2).
  if (g_signals.fetch_add(1) > 0) _exit(kExitCancelled);
  if (CancelToken* token = g_token.load()) token->Cancel();
  static const char kMessage[] = "\ncancelling: cleaning up (signal again to exit at once)\n";
  ssize_t ignored = write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
  (void)ignored;
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
