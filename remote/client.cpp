#include "remote/client.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <exception>

#include "core/timer.h"
#include "remote/asio.h"
#include "remote/sse.h"

namespace ctxbench::remote {

std::string Url::text() const { return fmt::format("http://{}:{}{}", host, port, prefix); }

Url parse_base_url(std::string_view url) {
  const auto fail = [&](const std::string& why) { return InputError(fmt::format("base_url \"{}\": {}", url, why)); };
  if (url.starts_with("https://"))
    throw fail("https is not supported (this client speaks plain http; put a TLS proxy in front if needed)");
  if (!url.starts_with("http://")) throw fail("expected http://HOST[:PORT][/PATH]");
  std::string_view rest = url.substr(7);
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (path.find_first_of("?#") != std::string_view::npos) throw fail("a query or fragment is not allowed");
  Url out;
  std::size_t colon = authority.rfind(':');
  if (authority.starts_with('[')) {  // [IPv6]:port
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) throw fail("unclosed '[' in the host");
    out.host = authority.substr(1, close - 1);
    colon = close + 1 < authority.size() && authority[close + 1] == ':' ? close + 1 : std::string_view::npos;
    if (colon == std::string_view::npos && close + 1 != authority.size()) throw fail("expected ':' after ']'");
  } else {
    out.host = authority.substr(0, colon);
  }
  if (out.host.empty()) throw fail("no host");
  if (colon != std::string_view::npos) {
    out.port = authority.substr(colon + 1);
    const bool digits =
        !out.port.empty() && out.port.size() <= 5 && out.port.find_first_not_of("0123456789") == std::string::npos;
    if (!digits || std::stoi(out.port) < 1 || std::stoi(out.port) > 65535) throw fail("port must be 1..65535");
  }
  while (path.ends_with('/')) path.remove_suffix(1);
  if (path.ends_with("/v1")) path.remove_suffix(3);
  out.prefix = path;
  return out;
}

namespace {

using asio::use_awaitable;
using Clock = std::chrono::steady_clock;
using Request = http::request<http::string_body>;

inline constexpr std::size_t kMaxReplyBytes = 64 << 20;
inline constexpr std::size_t kMaxEventBytes = 1 << 20;
inline constexpr std::size_t kMaxErrorBodyBytes = 4096;

// A failed attempt; transport trouble, truncated replies and 408/429/5xx are worth another attempt.
class AttemptFailed : public std::runtime_error {
 public:
  AttemptFailed(const std::string& what, bool retryable) : std::runtime_error(what), retryable(retryable) {}
  bool retryable;
};

std::string snippet(std::string_view text, std::size_t limit = 200) {
  return text.size() > limit ? std::string(text.substr(0, limit)) + "..." : std::string(text);
}

// Builds a Reply from the body as it arrives: SSE events when streaming, one JSON document otherwise. Each
// piece of text also goes to on_text (if set) as soon as it is read.
class ReplyReader {
 public:
  ReplyReader(Endpoint endpoint, bool sse, const Stopwatch& watch, const TextSink& on_text)
      : endpoint_(endpoint), sse_(sse), watch_(watch), on_text_(on_text) {}

  void add(std::string_view bytes) {
    buffer_ += bytes;
    // Events end at a line end: without one in the new bytes there is nothing new to parse.
    if (!sse_ || bytes.find_first_of("\r\n") == std::string_view::npos) {
      if (sse_ && buffer_.size() > kMaxEventBytes) throw ProtocolError(event_too_long());
      return;
    }
    auto parsed = parse_sse(buffer_);
    buffer_ = std::move(parsed.rest);
    if (buffer_.size() > kMaxEventBytes) throw ProtocolError(event_too_long());
    for (const auto& event : parsed.events) on_event(event);
  }

  Reply finish() {
    if (sse_) {
      if (buffer_.find_first_not_of(" \t\r\n") != std::string::npos)
        throw AttemptFailed("the stream ended inside an SSE event (broken frame): " + snippet(buffer_), true);
      if (!done_ && reply_.finish_reason.empty())
        throw AttemptFailed("the stream ended before [DONE] or a finish_reason", true);
    } else {
      on_part(parse_reply(endpoint_, parse_json(buffer_, "reply"), false));
    }
    reply_.total_seconds = watch_.seconds();
    if (reply_.text_chunks == 0) reply_.first_token_seconds = reply_.last_text_seconds = reply_.total_seconds;
    return std::move(reply_);
  }

 private:
  std::string event_too_long() const {
    return fmt::format("an SSE event longer than {} bytes: {}", kMaxEventBytes, snippet(buffer_));
  }

  static Json parse_json(const std::string& text, const char* what) {
    try {
      return Json::parse(text);
    } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number beyond a double
      throw ProtocolError(fmt::format("malformed JSON in the {} ({}): {}", what, e.what(), snippet(text)));
    }
  }

  void on_event(const SseEvent& event) {
    if (done_) return;
    if (event.data == "[DONE]") {
      done_ = true;
      return;
    }
    on_part(parse_reply(endpoint_, parse_json(event.data, "SSE event"), true));
  }

  void on_part(const ReplyPart& part) {
    if (!part.text.empty()) {
      reply_.last_text_seconds = watch_.seconds();
      if (reply_.text_chunks++ == 0) reply_.first_token_seconds = reply_.last_text_seconds;
      reply_.text += part.text;
      if (on_text_) on_text_(part.text);
    }
    if (part.finish_reason) reply_.finish_reason = *part.finish_reason;
    if (part.usage) reply_.usage = part.usage;
  }

  Endpoint endpoint_;
  bool sse_;
  const Stopwatch& watch_;
  const TextSink& on_text_;
  std::string buffer_;
  Reply reply_;
  bool done_ = false;
};

bool retryable_status(int status) { return status == 408 || status == 429 || status >= 500; }

class Attempt {
 public:
  Attempt(const ClientOptions& options, const std::string& body, const TextSink& on_text)
      : options_(options),
        body_(body),
        on_text_(on_text),
        timeout_(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.timeout_seconds))) {}

  asio::awaitable<Reply> run() {
    try {
      co_return co_await exchange();
    } catch (const boost::system::system_error& e) {
      throw AttemptFailed(describe(e.code()), true);
    }
  }

 private:
  std::string describe(const boost::system::error_code& error) const {
    if (error == beast::error::timeout)
      return fmt::format("timed out after {} s while {}", options_.timeout_seconds, stage_);
    if (error == http::error::end_of_stream || error == http::error::partial_message || error == asio::error::eof)
      return fmt::format("the server closed the connection while {}", stage_);
    return fmt::format("{} while {}", error.message(), stage_);
  }

  asio::awaitable<Reply> exchange() {
    const Stopwatch watch;
    auto executor = co_await asio::this_coro::executor;
    beast::tcp_stream stream(executor);
    tcp::resolver resolver(executor);
    stage_ = "resolving " + options_.url.host;
    const auto endpoints = co_await resolver.async_resolve(options_.url.host, options_.url.port, use_awaitable);
    stage_ = "connecting";
    stream.expires_after(timeout_);
    co_await stream.async_connect(endpoints, use_awaitable);
    stage_ = "sending the request";
    stream.expires_after(timeout_);
    auto request = make_request();
    co_await http::async_write(stream, request, use_awaitable);

    stage_ = "waiting for the reply";
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(kMaxReplyBytes);
    stream.expires_after(timeout_);
    co_await http::async_read_header(stream, buffer, parser, use_awaitable);
    const int status = parser.get().result_int();
    const bool ok = status >= 200 && status < 300;
    const bool sse = beast::iequals(parser.get()[http::field::content_type].substr(0, 17), "text/event-stream");
    ReplyReader reader(options_.endpoint, sse && ok, watch, on_text_);
    std::string error_body;

    stage_ = "reading the reply";
    char chunk[16384];
    while (!parser.is_done() && (ok || error_body.size() < kMaxErrorBodyBytes)) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      stream.expires_after(timeout_);
      boost::system::error_code error;
      co_await http::async_read_some(stream, buffer, parser, asio::redirect_error(use_awaitable, error));
      if (error && error != http::error::need_buffer) throw boost::system::system_error(error);
      const std::string_view got(chunk, sizeof chunk - parser.get().body().size);
      if (ok) {
        reader.add(got);
      } else {
        error_body += got;
      }
    }
    if (!ok)
      throw AttemptFailed(
          fmt::format("HTTP {} {}: {}", status, std::string(parser.get().reason()), snippet(error_body)),
          retryable_status(status));
    co_return reader.finish();
  }

  Request make_request() const {
    Request request{http::verb::post, options_.url.prefix + std::string(endpoint_path(options_.endpoint)), 11};
    request.set(http::field::host, options_.url.host + ":" + options_.url.port);
    request.set(http::field::user_agent, "ctxbench");
    request.set(http::field::content_type, "application/json");
    request.set(http::field::accept, options_.stream ? "text/event-stream" : "application/json");
    if (!options_.api_key.empty()) request.set(http::field::authorization, "Bearer " + options_.api_key);
    request.keep_alive(false);
    request.body() = body_;
    request.prepare_payload();
    return request;
  }

  const ClientOptions& options_;
  const std::string& body_;
  const TextSink& on_text_;
  Clock::duration timeout_;
  std::string stage_;
};

// `on_text` may be empty (nothing is handed on while the reply is read).
asio::awaitable<Outcome> complete_one(const ClientOptions& options, const TextSample& sample, const TextSink& on_text) {
  const std::string body = make_request_body(options.endpoint, options.model, sample, options.stream).dump();
  const std::string where = options.url.text() + std::string(endpoint_path(options.endpoint));
  // Text handed on cannot be taken back, so an attempt that fails after handing some on is not retried: the
  // retry would hand the same text on again. What on_text throws is the caller's, not a failed attempt.
  bool handed_on = false;
  std::exception_ptr sink_error;
  TextSink sink;
  if (on_text) {
    sink = [&](std::string_view text) {
      handed_on = true;
      try {
        on_text(text);
      } catch (...) {
        sink_error = std::current_exception();
        throw;
      }
    };
  }
  Outcome out;
  for (;;) {
    ++out.attempts;
    std::string error;
    bool retryable = false;
    try {
      Attempt attempt(options, body, sink);
      out.reply = co_await attempt.run();
      co_return out;
    } catch (const AttemptFailed& e) {
      error = e.what();
      retryable = e.retryable;
    } catch (const std::exception& e) {  // malformed replies and server error objects
      error = e.what();
    }
    if (sink_error) std::rethrow_exception(sink_error);
    if (!retryable || handed_on || out.attempts > options.retries) {
      const char* note = !retryable ? ", not retried" : handed_on ? ", not retried: text was already streamed on" : "";
      out.error = fmt::format("{}: {} (attempt {} of {}{})", where, error, out.attempts, options.retries + 1, note);
      co_return out;
    }
    asio::steady_timer backoff(co_await asio::this_coro::executor);
    backoff.expires_after(std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(options.backoff_seconds * std::pow(2.0, out.attempts - 1))));
    co_await backoff.async_wait(use_awaitable);
  }
}

}  // namespace

std::vector<Outcome> complete_all(const ClientOptions& options, const std::vector<TextSample>& samples) {
  std::vector<Outcome> outcomes(samples.size());
  std::size_t next = 0;
  bool failed = false;
  auto worker = [&]() -> asio::awaitable<void> {
    while (!failed && next < samples.size()) {
      const std::size_t i = next++;
      outcomes[i] = co_await complete_one(options, samples[i], TextSink());
      if (!outcomes[i].reply) failed = true;
    }
  };
  asio::io_context io;
  const int workers = std::max(1, std::min<int>(options.concurrency, static_cast<int>(samples.size())));
  for (int w = 0; w < workers; ++w) {
    asio::co_spawn(io, worker(), [](std::exception_ptr error) {
      if (error) std::rethrow_exception(error);
    });
  }
  io.run();
  for (auto& outcome : outcomes) {
    if (!outcome.reply && outcome.error.empty()) outcome.error = "not sent: an earlier sample failed";
  }
  return outcomes;
}

Outcome complete_streaming(const ClientOptions& options, const TextSample& sample, const TextSink& on_text) {
  Outcome out;
  asio::io_context io;
  asio::co_spawn(io, complete_one(options, sample, on_text), [&](std::exception_ptr error, Outcome outcome) {
    if (error) std::rethrow_exception(error);
    out = std::move(outcome);
  });
  io.run();
  return out;
}

}  // namespace ctxbench::remote
