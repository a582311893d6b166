// ctxbench serve: a Generator (the in-process model runtime, or any other) behind the OpenAI-compatible
// completion API on a loopback port, with SSE streaming. One I/O thread serves the connections; one worker
// thread owns the generator and answers requests in arrival order.
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include "core/text.h"

namespace ctxbench::remote {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port (see Server::port)
  std::string model_name = "ctxbench";
  int max_connections = 64;                  // more get 503 at once
  std::size_t max_request_bytes = 16 << 20;  // bigger bodies get 413
  std::size_t max_header_bytes = 16 << 10;   // bigger headers get 431
  double idle_timeout_seconds = 30;          // waiting for a request, or for the client to take a reply
  double shutdown_grace_seconds = 30;        // for replies in progress after SIGINT/SIGTERM or shutdown()
  std::FILE* log = nullptr;                  // one line per start, failure and shutdown; null for silence
};

struct ServerStats {
  long accepted = 0;
  long rejected_busy = 0;  // connections turned away with 503 (or closed) because max_connections were open
  long requests = 0;       // requests read in full or rejected by the parser
  long client_errors = 0;  // 4xx replies
  int active = 0;          // connections open now
  int peak_active = 0;
};

class Server {
 public:
  // Binds and listens; throws std::runtime_error naming the address when it cannot.
  Server(std::unique_ptr<Generator> generator, ServeOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const;
  // Serves until shutdown() (from any thread) or, when handle_signals, the first SIGINT/SIGTERM: the listener
  // closes, idle connections close, replies in progress finish (up to the grace period), then run returns.
  // A second signal stops at once.
  void run(bool handle_signals = false);
  void shutdown();
  ServerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ctxbench::remote
