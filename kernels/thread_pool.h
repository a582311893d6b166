// A persistent pool of worker threads for the CPU kernels (starting threads on every call would cost
// more than a small decode step).
#pragma once

#include <functional>

namespace ctxbench::kernels {

// threads <= 0 means the hardware concurrency.
int resolve_threads(int threads);

// Runs body(worker) for worker = 0 .. workers-1 concurrently (the caller runs worker 0) and returns when
// all are done, rethrowing the first exception. Parallel regions run one at a time; a region started from
// inside another runs on the calling thread alone, as body(0).
void run_parallel(int workers, const std::function<void(int)>& body);

// Runs task(i) for i in [0, tasks) on up to `threads` workers (<= 0: all cores): each worker takes the next
// unclaimed task, so uneven tasks balance.
void parallel_for(int tasks, int threads, const std::function<void(int task)>& task);

}  // namespace ctxbench::kernels
