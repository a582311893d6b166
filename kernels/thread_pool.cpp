#include "kernels/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace ctxbench::kernels {
namespace {

thread_local bool inside_region = false;

class ThreadPool {
 public:
  ~ThreadPool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  void run(int workers, const std::function<void(int)>& body) {
    std::lock_guard region(region_mutex_);
    while (static_cast<int>(threads_.size()) < workers - 1) {
      const int index = static_cast<int>(threads_.size()) + 1;
      threads_.emplace_back([this, index] { serve(index); });
    }
    {
      std::lock_guard lock(mutex_);
      body_ = &body;
      workers_ = workers;
      running_ = workers - 1;
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    run_guarded(body, 0);
    std::unique_lock lock(mutex_);
    finished_.wait(lock, [this] { return running_ == 0; });
    body_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void serve(int index) {
    std::uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* body = nullptr;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || (generation_ != seen && index < workers_); });
        if (stopping_) return;
        seen = generation_;
        body = body_;
      }
      run_guarded(*body, index);
      std::lock_guard lock(mutex_);
      if (--running_ == 0) finished_.notify_one();
    }
  }

  void run_guarded(const std::function<void(int)>& body, int index) {
    inside_region = true;
    try {
      body(index);
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    inside_region = false;
  }

  std::mutex region_mutex_;  // one parallel region at a time
  std::mutex mutex_;         // guards the fields below
  std::condition_variable wake_, finished_;
  const std::function<void(int)>* body_ = nullptr;
  int workers_ = 0;
  int running_ = 0;
  std::uint64_t generation_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
};

ThreadPool& pool() {
  static ThreadPool instance;
  return instance;
}

}  // namespace

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void run_parallel(int workers, const std::function<void(int)>& body) {
  if (workers <= 1 || inside_region) {
    body(0);
    return;
  }
  pool().run(workers, body);
}

void parallel_for(int tasks, int threads, const std::function<void(int task)>& task) {
  if (tasks <= 0) return;
  std::atomic<int> next{0};
  run_parallel(std::min(resolve_threads(threads), tasks), [&](int) {
    for (int t = next++; t < tasks; t = next++) task(t);
  });
}

}  // namespace ctxbench::kernels
