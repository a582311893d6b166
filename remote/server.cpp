#include "remote/server.h"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "remote/asio.h"
#include "remote/http_request.h"
#include "remote/openai.h"
#include "remote/sse.h"
#include "remote/stop_filter.h"

namespace ctxbench::remote {
namespace {

using asio::use_awaitable;
using Clock = std::chrono::steady_clock;

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

long unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// One generation as the connection that asked for it sees it. The worker thread only posts to the I/O thread,
// which alone reads and writes these fields (except `cancelled`).
struct JobState {
  explicit JobState(const asio::any_io_executor& executor) : wake(executor) {
    wake.expires_at(Clock::time_point::max());
  }
  asio::steady_timer wake;         // cancelled whenever something arrives
  std::deque<std::string> pieces;  // generated text not taken yet, a piece per token as the generator gave it
  bool done = false;
  Completion result;  // text stays empty: the pieces carry it
  std::string error;
  std::atomic<bool> cancelled = false;  // the connection went away: stop generating

  void post_update(std::function<void(JobState&)> update, asio::io_context& io, const std::shared_ptr<JobState>& self) {
    asio::post(io, [self, update = std::move(update)] {
      update(*self);
      self->wake.cancel();
    });
  }
};

struct Job {
  Prompt prompt;
  int max_tokens = 0;
  std::vector<std::string> stop;
  std::shared_ptr<JobState> state;
};

struct Cancelled {};

// Owns the generator: one thread answers the queued jobs in order.
class Worker {
 public:
  Worker(Generator& generator, asio::io_context& io) : generator_(generator), io_(io), thread_([this] { loop(); }) {}
  ~Worker() { stop(); }

  void submit(Job job) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(job));
    }
    ready_.notify_one();
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      for (auto& job : queue_) job.state->cancelled = true;
      if (running_) running_->cancelled = true;
    }
    ready_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void loop() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
        running_ = job.state;
      }
      run(job);
      std::lock_guard lock(mutex_);
      running_.reset();
    }
  }

  void run(const Job& job) {
    const auto& state = job.state;
    try {
      if (state->cancelled) throw Cancelled{};
      TextSample sample;
      sample.prompt = job.prompt.tokens ? generator_.tokenizer().decode(*job.prompt.tokens) : job.prompt.text;
      sample.max_new_tokens = job.max_tokens;
      sample.stop = job.stop;
      Completion result;
      if (job.max_tokens == 0) {
        result.prompt_tokens = static_cast<int>(generator_.tokenizer().encode(sample.prompt).size());
      } else {
        const auto g = generator_.generate_stream(sample, [&](std::string_view piece) {
          if (state->cancelled) throw Cancelled{};
          state->post_update([piece = std::string(piece)](JobState& s) { s.pieces.push_back(piece); }, io_, state);
        });
        result.prompt_tokens = g.prompt_tokens;
        result.completion_tokens = g.generated_tokens;
      }
      result.finish_reason = result.completion_tokens >= job.max_tokens ? "length" : "stop";
      state->post_update(
          [result](JobState& s) {
            s.result = result;
            s.done = true;
          },
          io_, state);
    } catch (const Cancelled&) {
      state->post_update(
          [](JobState& s) {
            s.error = "cancelled";
            s.done = true;
          },
          io_, state);
    } catch (const std::exception& e) {
      state->post_update(
          [message = std::string(e.what())](JobState& s) {
            s.error = message;
            s.done = true;
          },
          io_, state);
    }
  }

  Generator& generator_;
  asio::io_context& io_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Job> queue_;
  std::shared_ptr<JobState> running_;
  bool stopping_ = false;
  std::thread thread_;
};

struct Connection {
  explicit Connection(tcp::socket socket) : stream(std::move(socket)) {}
  beast::tcp_stream stream;
  bool busy = false;  // between reading a request and finishing its reply
};

// Marks the job cancelled when the connection stops waiting for it (error, disconnect, shutdown).
struct CancelOnExit {
  std::shared_ptr<JobState> state;
  ~CancelOnExit() {
    if (!state->done) state->cancelled = true;
  }
};

}  // namespace

struct Server::Impl {
  Impl(std::unique_ptr<Generator> generator_in, ServeOptions options_in)
      : options(std::move(options_in)),
        generator(std::move(generator_in)),
        acceptor(io),
        grace(io),
        worker(*generator, io) {
    try {
      const tcp::endpoint endpoint(asio::ip::make_address(options.host), static_cast<unsigned short>(options.port));
      acceptor.open(endpoint.protocol());
      acceptor.set_option(asio::socket_base::reuse_address(true));
      acceptor.bind(endpoint);
      acceptor.listen(asio::socket_base::max_listen_connections);
      port = acceptor.local_endpoint().port();
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error(
          fmt::format("cannot listen on {}:{}: {}", options.host, options.port, e.code().message()));
    }
  }

  // ---- connections ----

  asio::awaitable<void> accept_loop() {
    for (;;) {
      boost::system::error_code error;
      tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, error));
      if (!acceptor.is_open()) co_return;
      if (error) {  // e.g. out of file descriptors: let connections close before accepting more
        asio::steady_timer pause(io, std::chrono::milliseconds(50));
        co_await pause.async_wait(asio::redirect_error(use_awaitable, error));
        continue;
      }
      ++accepted;
      if (active >= options.max_connections) {
        ++rejected_busy;
        if (rejecting < options.max_connections) {
          ++rejecting;
          asio::co_spawn(io, reject_busy(std::move(socket)), asio::detached);
        }
        continue;  // beyond that the socket just closes
      }
      peak_active = std::max(peak_active.load(), ++active);
      asio::co_spawn(io, serve_connection(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> reject_busy(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    try {
      co_await write_json(stream, 503, error_body("too many connections; retry later", "server_busy"), false);
      co_await drain(stream);
    } catch (const std::exception&) {
    }
    --rejecting;
    maybe_stop();
  }

  asio::awaitable<void> serve_connection(tcp::socket socket) {
    Connection connection(std::move(socket));
    connections.insert(&connection);
    try {
      co_await serve_requests(connection);
    } catch (const std::exception&) {  // the client went away or stopped reading: drop the connection
    }
    connections.erase(&connection);
    boost::system::error_code ignored;
    connection.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    --active;
    maybe_stop();
  }

  asio::awaitable<void> serve_requests(Connection& connection) {
    beast::flat_buffer buffer;
    for (;;) {
      connection.busy = false;
      if (shutting_down) co_return;
      RequestParser parser;
      apply_limits(parser, {options.max_header_bytes, options.max_request_bytes});
      boost::system::error_code error;
      connection.stream.expires_after(seconds(options.idle_timeout_seconds));
      co_await http::async_read_header(connection.stream, buffer, parser, asio::redirect_error(use_awaitable, error));
      connection.busy = true;
      if (!error && parser.get()[http::field::expect] == "100-continue") {
        http::response<http::empty_body> go_on{http::status::continue_, 11};
        co_await http::async_write(connection.stream, go_on, use_awaitable);
      }
      if (!error && !parser.is_done())
        co_await http::async_read(connection.stream, buffer, parser, asio::redirect_error(use_awaitable, error));
      if (error) {
        if (!parser.got_some() || error == http::error::end_of_stream || error == http::error::partial_message ||
            error == beast::error::timeout || error == asio::error::operation_aborted)
          co_return;  // nothing (more) to answer: closed, idle, or shutting down
        ++requests;
        co_await send_error(connection.stream, status_for_parse_error(error),
                            fmt::format("malformed HTTP request: {}", error.message()), false);
        co_await drain(connection.stream);
        co_return;
      }
      ++requests;
      Request request = parser.release();
      const bool keep_alive = request.keep_alive() && !shutting_down;
      co_await handle(connection.stream, request, keep_alive);
      if (!keep_alive) co_return;
    }
  }

  // ---- routing ----

  // What a request asks for: a reply ready now (status and body), or a completion.
  struct Routed {
    int status = 200;
    Json body;
    std::optional<ApiRequest> completion;
  };

  Routed route(const Request& request) {
    std::string_view target(request.target().data(), request.target().size());
    target = target.substr(0, target.find('?'));
    const bool get = request.method() == http::verb::get;
    const auto reject = [&](int status, const std::string& message, const std::string& param = "") {
      ++client_errors;
      return Routed{status, error_body(message, "invalid_request_error", param), std::nullopt};
    };
    if (target == "/health" || target == "/v1/models") {
      if (!get) return reject(405, "use GET");
      if (target == "/health") return {200, {{"status", "ok"}}, std::nullopt};
      const Json model = {
          {"id", options.model_name}, {"object", "model"}, {"created", started}, {"owned_by", "ctxbench"}};
      return {200, {{"object", "list"}, {"data", Json::array({model})}}, std::nullopt};
    }
    if (target != endpoint_path(Endpoint::completions) && target != endpoint_path(Endpoint::chat))
      return reject(404, fmt::format("no route {}", target));
    if (request.method() != http::verb::post) return reject(405, "use POST");
    const Endpoint endpoint = target == endpoint_path(Endpoint::chat) ? Endpoint::chat : Endpoint::completions;
    try {
      return {200, Json(), parse_api_request(endpoint, request.body())};
    } catch (const ApiError& e) {
      return reject(e.status, e.what(), e.param);
    }
  }

  asio::awaitable<void> handle(beast::tcp_stream& stream, const Request& request, bool keep_alive) {
    Routed routed = route(request);
    if (!routed.completion) co_return co_await write_json(stream, routed.status, std::move(routed.body), keep_alive);
    const std::string id = fmt::format("cmpl-{}", ++completions);
    if (routed.completion->stream) co_return co_await stream_completion(stream, *routed.completion, id, keep_alive);
    co_return co_await complete(stream, *routed.completion, id, keep_alive);
  }

  std::shared_ptr<JobState> submit(const ApiRequest& api, const Prompt& prompt) {
    auto state = std::make_shared<JobState>(io.get_executor());
    worker.submit({prompt, api.max_tokens, api.stop, state});
    return state;
  }

  // Waits until the job has news (text or the end).
  static asio::awaitable<void> news(JobState& state) {
    if (!state.pieces.empty() || state.done) co_return;
    boost::system::error_code ignored;
    co_await state.wake.async_wait(asio::redirect_error(use_awaitable, ignored));
  }

  asio::awaitable<void> complete(beast::tcp_stream& stream, const ApiRequest& api, const std::string& id,
                                 bool keep_alive) {
    std::vector<Completion> choices;
    for (const Prompt& prompt : api.prompts) {
      const auto state = submit(api, prompt);
      const CancelOnExit cancel_on_exit{state};
      StopFilter filter(api.stop);
      std::string text;
      for (bool done = false; !done;) {
        co_await news(*state);
        done = state->done;  // text that came with the end is taken too
        for (; !state->pieces.empty(); state->pieces.pop_front()) text += filter.push(state->pieces.front());
      }
      if (!state->error.empty())
        co_return co_await send_error(stream, 500, "generation failed: " + state->error, keep_alive, "",
                                      "server_error");
      Completion choice = state->result;
      choice.text = text + filter.finish();
      if (filter.stopped()) choice.finish_reason = "stop";
      choices.push_back(std::move(choice));
    }
    co_await write_json(stream, 200, make_reply(api.endpoint, id, options.model_name, unix_time(), choices),
                        keep_alive);
  }

  asio::awaitable<void> stream_completion(beast::tcp_stream& stream, const ApiRequest& api, const std::string& id,
                                          bool keep_alive) {
    const auto state = submit(api, api.prompts.at(0));
    const CancelOnExit cancel_on_exit{state};
    const long created = unix_time();
    http::response<http::empty_body> header{http::status::ok, 11};
    header.set(http::field::server, "ctxbench");
    header.set(http::field::content_type, "text/event-stream");
    header.set(http::field::cache_control, "no-cache");
    header.keep_alive(keep_alive);
    header.chunked(true);
    http::response_serializer<http::empty_body> serializer(header);
    stream.expires_after(seconds(options.idle_timeout_seconds));
    co_await http::async_write_header(stream, serializer, use_awaitable);
    auto send = [&](const Json& event) { return write_chunk(stream, format_sse(event.dump())); };
    if (api.endpoint == Endpoint::chat)
      co_await send(make_chunk(api.endpoint, id, options.model_name, created, "", std::nullopt, true));
    StopFilter filter(api.stop);
    // One event per piece, written as it comes (a piece per token from generators that stream), so that the
    // client's time to first token and times between tokens are the generator's, not the pace of this loop.
    for (bool done = false; !done;) {
      co_await news(*state);
      done = state->done;  // text that came with the end is sent too
      while (!state->pieces.empty()) {
        const std::string text = filter.push(state->pieces.front());
        state->pieces.pop_front();
        if (!text.empty()) co_await send(make_chunk(api.endpoint, id, options.model_name, created, text, std::nullopt));
      }
    }
    if (!state->error.empty()) {  // too late for a status code: an error event, and no [DONE]
      co_await send(error_body("generation failed: " + state->error, "server_error"));
    } else {
      Completion result = state->result;
      const std::string rest = filter.finish();
      if (filter.stopped()) result.finish_reason = "stop";
      co_await send(make_chunk(api.endpoint, id, options.model_name, created, rest, result.finish_reason));
      if (api.include_usage) co_await send(make_usage_chunk(api.endpoint, id, options.model_name, created, result));
      co_await write_chunk(stream, format_sse("[DONE]"));
    }
    stream.expires_after(seconds(options.idle_timeout_seconds));
    co_await asio::async_write(stream, http::make_chunk_last(), use_awaitable);
  }

  // ---- writing ----

  asio::awaitable<void> write_chunk(beast::tcp_stream& stream, std::string data) {
    stream.expires_after(seconds(options.idle_timeout_seconds));
    co_await asio::async_write(stream, http::make_chunk(asio::buffer(data)), use_awaitable);
  }

  asio::awaitable<void> write_json(beast::tcp_stream& stream, int status, Json body, bool keep_alive) {
    http::response<http::string_body> response{static_cast<http::status>(status), 11};
    response.set(http::field::server, "ctxbench");
    response.set(http::field::content_type, "application/json");
    response.keep_alive(keep_alive);
    // Invalid UTF-8 (a request target echoed in an error, a generation cut inside a character) is replaced,
    // not thrown on: the client gets its reply.
    response.body() = body.dump(-1, ' ', false, Json::error_handler_t::replace);
    response.prepare_payload();
    stream.expires_after(seconds(options.idle_timeout_seconds));
    co_await http::async_write(stream, response, use_awaitable);
  }

  // Not a coroutine (GCC 12 miscompiles coroutines with defaulted string arguments): the reply owns its body.
  asio::awaitable<void> send_error(beast::tcp_stream& stream, int status, const std::string& message, bool keep_alive,
                                   const std::string& param = "", const std::string& type = "invalid_request_error") {
    if (status >= 400 && status < 500) ++client_errors;
    return write_json(stream, status, error_body(message, type, param), keep_alive);
  }

  // After a reply to a request that was not read in full: closing with unread bytes would reset the connection,
  // and the client could lose the reply. Read (and drop) what it sends until it closes, for a second at most.
  static asio::awaitable<void> drain(beast::tcp_stream& stream) {
    boost::system::error_code error;
    stream.socket().shutdown(tcp::socket::shutdown_send, error);
    stream.expires_after(std::chrono::seconds(1));
    char sink[4096];
    while (!error) co_await stream.async_read_some(asio::buffer(sink), asio::redirect_error(use_awaitable, error));
  }

  // ---- shutdown ----

  void begin_shutdown() {
    if (shutting_down) return;
    shutting_down = true;
    if (options.log) fmt::print(options.log, "ctxbench serve: shutting down ({} connections open)\n", active.load());
    boost::system::error_code ignored;
    acceptor.close(ignored);
    for (Connection* connection : connections) {
      if (!connection->busy) connection->stream.cancel();
    }
    grace.expires_after(seconds(options.shutdown_grace_seconds));
    grace.async_wait([this](const boost::system::error_code& error) {
      if (!error) io.stop();
    });
    maybe_stop();
  }

  void maybe_stop() {
    if (shutting_down && active == 0 && rejecting == 0) io.stop();
  }

  void wait_for_signals() {
    signals.emplace(io, SIGINT, SIGTERM);
    signals->async_wait([this](const boost::system::error_code& error, int) {
      if (error) return;
      begin_shutdown();
      signals->async_wait([this](const boost::system::error_code& again, int) {
        if (!again) io.stop();
      });
    });
  }

  ServeOptions options;
  std::unique_ptr<Generator> generator;
  asio::io_context io;
  tcp::acceptor acceptor;
  asio::steady_timer grace;
  std::optional<asio::signal_set> signals;
  Worker worker;  // last: its thread stops before the rest goes away
  std::set<Connection*> connections;
  bool shutting_down = false;
  int rejecting = 0;
  int port = 0;
  long completions = 0;
  const long started = unix_time();
  std::atomic<long> accepted = 0, rejected_busy = 0, requests = 0, client_errors = 0;
  std::atomic<int> active = 0, peak_active = 0;
};

Server::Server(std::unique_ptr<Generator> generator, ServeOptions options)
    : impl_(std::make_unique<Impl>(std::move(generator), std::move(options))) {}

Server::~Server() = default;

int Server::port() const { return impl_->port; }

void Server::run(bool handle_signals) {
  Impl& s = *impl_;
  if (handle_signals) s.wait_for_signals();
  asio::co_spawn(s.io, s.accept_loop(), asio::detached);
  if (s.options.log)
    fmt::print(s.options.log, "ctxbench serve: listening on http://{}:{} (model \"{}\")\n", s.options.host, port(),
               s.options.model_name);
  if (s.options.log) std::fflush(s.options.log);
  s.io.run();
  s.worker.stop();
  if (s.options.log) fmt::print(s.options.log, "ctxbench serve: stopped\n");
}

void Server::shutdown() {
  asio::post(impl_->io, [this] { impl_->begin_shutdown(); });
}

ServerStats Server::stats() const {
  const Impl& s = *impl_;
  return {s.accepted, s.rejected_busy, s.requests, s.client_errors, s.active, s.peak_active};
}

}  // namespace ctxbench::remote
