#pragma once

#include <cstdio>
#include <string>

#include "core/timer.h"

namespace ctxbench {

// A progress bar with cells done and ETA when the output is a terminal; one plain log line per cell otherwise.
class Progress {
 public:
  Progress(int total, int already_done, std::FILE* out);
  void cell_done(const std::string& what, bool ok, double seconds);
  void finish();

 private:
  int total_;
  int done_;
  int done_here_ = 0;
  std::FILE* out_;
  bool terminal_;
  Stopwatch clock_;
};

std::string format_duration(double seconds);

}  // namespace ctxbench
