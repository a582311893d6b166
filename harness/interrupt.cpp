#include "harness/interrupt.h"

#include <signal.h>

namespace ctxbench {
namespace {

volatile sig_atomic_t first_signal = 0;
volatile sig_atomic_t signals_received = 0;
struct sigaction previous_int, previous_term;

void on_signal(int sig) {
  if (signals_received == 0) first_signal = sig;
  signals_received = signals_received + 1;
}

}  // namespace

InterruptScope::InterruptScope() {
  first_signal = 0;
  signals_received = 0;
  struct sigaction action = {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  // No SA_RESTART: a blocking read of the isolated cell's pipe returns, so a second signal is seen at once.
  sigaction(SIGINT, &action, &previous_int);
  sigaction(SIGTERM, &action, &previous_term);
}

InterruptScope::~InterruptScope() {
  sigaction(SIGINT, &previous_int, nullptr);
  sigaction(SIGTERM, &previous_term, nullptr);
}

int stop_signal() { return first_signal; }

bool abandon_requested() { return signals_received >= 2; }

}  // namespace ctxbench
