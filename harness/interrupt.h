// Ctrl-C and SIGTERM during a run. The first signal asks the runner to stop once the cell in flight is stored;
// a second one abandons that cell. The handlers only count signals; the runner and the isolated cell read them.
#pragma once

namespace ctxbench {

// Installs the handlers for its lifetime and restores the previous ones after.
class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
};

// The first SIGINT or SIGTERM received inside the scope, 0 when none.
int stop_signal();
// Whether a second signal came: the cell in flight is to be abandoned.
bool abandon_requested();

}  // namespace ctxbench
