// Shared by the remote tests: a test generator, a server on a background thread, a scripted misbehaving HTTP
// server, and raw loopback connections. Everything listens on 127.0.0.1 only and every wait is bounded.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "engines/engine.h"
#include "remote/asio.h"
#include "remote/byte_tokenizer.h"
#include "remote/server.h"
#include "tasks/task.h"
#include "tests/key_task.h"

namespace ctxbench::testing {

namespace asio = remote::asio;
namespace beast = remote::beast;
namespace http = remote::http;
using remote::tcp;

// Answers the word after "key is " (up to the next '.'), one byte per token, one piece per byte. Stops after a
// stop string (and keeps it, as a model would: the server must cut it). A prompt containing "FAIL" throws.
class KeyGenerator final : public Generator {
 public:
  explicit KeyGenerator(std::chrono::milliseconds piece_delay = {}, bool stream_pieces = true)
      : piece_delay_(piece_delay), stream_pieces_(stream_pieces) {}

  static std::string answer(const std::string& prompt) {
    const auto at = prompt.find("key is ");
    if (at == std::string::npos) return "none";
    return prompt.substr(at + 7, prompt.find('.', at + 7) - at - 7);
  }

  const Tokenizer& tokenizer() const override { return tokenizer_; }

  Generation generate(const TextSample& sample) override {
    return generate_pieces(sample, [](std::string_view) {});
  }

  Generation generate_stream(const TextSample& sample, const std::function<void(std::string_view)>& on_text) override {
    if (!stream_pieces_) return Generator::generate_stream(sample, on_text);
    return generate_pieces(sample, on_text);
  }

  std::vector<double> token_logprobs(const std::vector<int>&) override {
    throw std::runtime_error("KeyGenerator cannot score tokens");
  }

 private:
  Generation generate_pieces(const TextSample& sample, const std::function<void(std::string_view)>& on_text) {
    if (sample.prompt.find("FAIL") != std::string::npos)
      throw std::runtime_error("the test generator was told to fail");
    const std::string full = answer(sample.prompt);
    Generation g;
    g.prompt_tokens = static_cast<int>(sample.prompt.size());
    for (std::size_t i = 0; i < full.size() && g.generated_tokens < sample.max_new_tokens; ++i) {
      if (piece_delay_.count()) std::this_thread::sleep_for(piece_delay_);
      g.text += full[i];
      ++g.generated_tokens;
      on_text(full.substr(i, 1));
      bool stopped = false;
      for (const auto& s : sample.stop) stopped = stopped || g.text.ends_with(s);
      if (stopped) break;
    }
    return g;
  }

  remote::ByteTokenizer tokenizer_;
  std::chrono::milliseconds piece_delay_;
  bool stream_pieces_;
};

// A text task for the remote tests. Inline: registered once however many test files include this header.
inline const tasks::RegisterTask remote_keys_task{testing::key_task("test_remote_keys", 4)};

// The remote engine as its registration makes it, asking the server at `url`; `params` add to its defaults.
inline std::unique_ptr<Generator> remote_generator(const std::string& url, Json params = Json::object()) {
  params["base_url"] = url;
  params["model"] = "test";
  return engines::EngineRegistry::instance().get("remote", "engine").make_generator(params);
}

// A Server running on its own thread; shut down and joined when it goes away.
class ServerThread {
 public:
  explicit ServerThread(std::unique_ptr<Generator> generator, remote::ServeOptions options = quiet())
      : server_(std::move(generator), std::move(options)), thread_([this] { server_.run(); }) {}
  ~ServerThread() { stop(); }

  static remote::ServeOptions quiet() {
    remote::ServeOptions options;
    options.port = 0;
    options.idle_timeout_seconds = 2;
    options.shutdown_grace_seconds = 5;
    return options;
  }

  remote::Server& server() { return server_; }
  int port() const { return server_.port(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()); }
  void stop() {
    if (!thread_.joinable()) return;
    server_.shutdown();
    thread_.join();
  }

 private:
  remote::Server server_;
  std::thread thread_;
};

// What the scripted server does with a request: write `raw` (bytes, verbatim), then close or stall.
struct Script {
  std::string raw;
  bool stall = false;                  // keep the connection open without a word until the server goes away
  std::chrono::milliseconds delay{0};  // before writing (other connections are served meanwhile)
};

// A misbehaving HTTP server: reads each request in full, then follows the script for the i-th request (from 0).
class ScriptedServer {
 public:
  using Handler = std::function<Script(int request, const std::string& body)>;

  explicit ScriptedServer(Handler handler) : handler_(std::move(handler)), acceptor_(io_) {
    const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(endpoint.protocol());
    acceptor_.bind(endpoint);
    acceptor_.listen();
    asio::co_spawn(io_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~ScriptedServer() {
    io_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()); }
  int requests() const { return requests_; }
  int peak_in_flight() const { return peak_in_flight_; }  // requests read and not yet answered, at most
  std::string last_body() const {
    std::lock_guard lock(mutex_);
    return last_body_;
  }

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      tcp::socket socket = co_await acceptor_.async_accept(asio::use_awaitable);
      asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> serve(tcp::socket socket) {
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    boost::system::error_code error;
    co_await http::async_read(socket, buffer, request, asio::redirect_error(asio::use_awaitable, error));
    if (error) co_return;
    {
      std::lock_guard lock(mutex_);
      last_body_ = request.body();
    }
    const Script script = handler_(requests_++, request.body());
    peak_in_flight_ = std::max(peak_in_flight_.load(), ++in_flight_);
    if (script.delay.count()) {
      asio::steady_timer pause(io_, script.delay);
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, error));
    }
    --in_flight_;
    co_await asio::async_write(socket, asio::buffer(script.raw), asio::redirect_error(asio::use_awaitable, error));
    if (script.stall) {
      asio::steady_timer forever(io_, std::chrono::hours(1));
      co_await forever.async_wait(asio::redirect_error(asio::use_awaitable, error));
    }
  }

  Handler handler_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<int> requests_ = 0, in_flight_ = 0, peak_in_flight_ = 0;
  mutable std::mutex mutex_;
  std::string last_body_;
};

// HTTP replies for scripts.
inline std::string http_reply(int status, const std::string& content_type, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: " + content_type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

// An SSE reply without Content-Length: the body runs until the connection closes.
inline std::string sse_reply(const std::string& events) {
  return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" + events;
}

inline std::string completion_json(const std::string& text) {
  return R"({"choices": [{"index": 0, "text": ")" + text +
         R"(", "finish_reason": "stop"}], "usage": {"prompt_tokens": 7, "completion_tokens": 2}})";
}

inline std::string completion_events(const std::string& text) {
  std::string out;
  for (const char c : text)
    out +=
        "data: {\"choices\": [{\"index\": 0, \"text\": \"" + std::string(1, c) + "\", \"finish_reason\": null}]}\n\n";
  out += "data: {\"choices\": [{\"index\": 0, \"text\": \"\", \"finish_reason\": \"stop\"}]}\n\n";
  out += "data: {\"choices\": [], \"usage\": {\"prompt_tokens\": 11, \"completion_tokens\": 3}}\n\n";
  return out + "data: [DONE]\n\n";
}

// A port on 127.0.0.1 with nothing listening (bound for a moment, then released).
inline int closed_port() {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

// Sends `bytes` to 127.0.0.1:port and returns what comes back until the server closes, or until `seconds` pass.
inline std::string raw_exchange(int port, const std::string& bytes, double seconds = 5) {
  asio::io_context io;
  tcp::socket socket(io);
  std::string reply;
  auto exchange = [&]() -> asio::awaitable<void> {
    boost::system::error_code error;
    co_await socket.async_connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)},
                                  asio::redirect_error(asio::use_awaitable, error));
    if (error) co_return;
    co_await asio::async_write(socket, asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, error));
    char chunk[4096];
    while (!error) {
      const std::size_t n =
          co_await socket.async_read_some(asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, error));
      reply.append(chunk, n);
    }
  };
  asio::co_spawn(io, exchange(), asio::detached);
  io.run_for(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(seconds)));
  return reply;
}

inline std::string post(const std::string& path, const std::string& body, const std::string& extra_headers = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n" +
         extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// The status code of the first reply in `raw` (0 if there is none).
inline int status_of(const std::string& raw) {
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || raw.size() < 12) return 0;
  return std::stoi(raw.substr(9, 3));
}

inline std::string body_of(const std::string& raw) {
  const auto at = raw.find("\r\n\r\n");
  return at == std::string::npos ? "" : raw.substr(at + 4);
}

}  // namespace ctxbench::testing
