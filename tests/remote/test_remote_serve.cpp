// ctxbench serve over a test generator, driven by the remote engine's client, by the runner, by raw
// connections (malformed requests, a flood) and as a process (signals).
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <csignal>
#include <fstream>
#include <map>

#include "core/timer.h"
#include "harness/runner.h"
#include "harness/store.h"
#include "harness/suite.h"
#include "model/backend.h"
#include "remote/client.h"
#include "tests/helpers.h"
#include "tests/remote/remote_support.h"

extern char** environ;

using namespace ctxbench;
using namespace ctxbench::remote;
using testing::KeyGenerator;
using testing::ServerThread;

namespace {

using std::chrono::milliseconds;

ClientOptions client_for(const ServerThread& server, Endpoint endpoint, bool stream) {
  ClientOptions options;
  options.url = parse_base_url(server.url());
  options.endpoint = endpoint;
  options.model = "test";
  options.timeout_seconds = 5;
  options.retries = 0;
  options.stream = stream;
  return options;
}

TextSample key_sample(const std::string& key, int max_tokens = 16, std::vector<std::string> stop = {}) {
  return {"Some text. The key is " + key + ". More text.", {key}, max_tokens, std::move(stop), Json()};
}

const Reply& reply_of(const Outcome& outcome) {
  INFO(outcome.error);
  REQUIRE(outcome.reply);
  return *outcome.reply;
}

Json json_body(const std::string& raw) { return Json::parse(testing::body_of(raw)); }

// Polls until `done` or `seconds` pass; returns done().
template <typename Done>
bool eventually(Done done, double seconds = 5) {
  const Stopwatch watch;
  while (!done() && watch.seconds() < seconds) std::this_thread::sleep_for(milliseconds(5));
  return done();
}

}  // namespace

TEST_CASE("serve answers completions and chat, streamed or whole, to the remote engine's client", "[remote][serve]") {
  ServerThread server(std::make_unique<KeyGenerator>(milliseconds(3)));
  for (const Endpoint endpoint : {Endpoint::completions, Endpoint::chat}) {
    for (const bool stream : {true, false}) {
      INFO("endpoint " << endpoint_path(endpoint) << " stream " << stream);
      const auto outcomes = complete_all(
          client_for(server, endpoint, stream),
          {key_sample("4711"), key_sample("98765", 2), key_sample("1234", 16, {"3"}), key_sample("77", 16, {"x"})});
      const auto& whole = reply_of(outcomes[0]);
      CHECK(whole.text == "4711");
      CHECK(whole.finish_reason == "stop");
      REQUIRE(whole.usage);
      CHECK(whole.usage->prompt_tokens == static_cast<int>(key_sample("4711").prompt.size()));
      CHECK(whole.usage->completion_tokens == 4);
      CHECK(whole.first_token_seconds <= whole.total_seconds);
      if (stream) {
        CHECK(whole.text_chunks >= 2);  // one event per piece unless pieces arrive together
        CHECK(whole.first_token_seconds < whole.total_seconds);
      }
      const auto& cut = reply_of(outcomes[1]);
      CHECK(cut.text == "98");
      CHECK(cut.finish_reason == "length");
      const auto& stopped = reply_of(outcomes[2]);
      CHECK(stopped.text == "12");  // the generator kept the stop string; serve cuts it
      CHECK(stopped.finish_reason == "stop");
      CHECK(reply_of(outcomes[3]).text == "77");
    }
  }
}

TEST_CASE("serve streams a generator without pieces as one event", "[remote][serve]") {
  ServerThread server(std::make_unique<KeyGenerator>(milliseconds(0), false));
  const auto outcome = complete_all(client_for(server, Endpoint::completions, true), {key_sample("2024")}).at(0);
  CHECK(reply_of(outcome).text == "2024");
  CHECK(reply_of(outcome).text_chunks == 1);
}

TEST_CASE("a streamed completion of 16 tokens through serve arrives as 16 events, however fast they are made",
          "[remote][serve]") {
  // No delay between pieces: events that were merged on their way out would show here.
  ServerThread server(std::make_unique<KeyGenerator>(milliseconds(0)));
  const auto outcome =
      complete_all(client_for(server, Endpoint::completions, true), {key_sample("0123456789abcdef", 16)}).at(0);
  const auto& reply = reply_of(outcome);
  CHECK(reply.text == "0123456789abcdef");
  CHECK(reply.text_chunks >= 16);
  CHECK(reply.first_token_seconds <= reply.last_text_seconds);
  CHECK(reply.last_text_seconds <= reply.total_seconds);
}

TEST_CASE("serve --engine remote streams the upstream's tokens as they arrive", "[remote][serve][proxy]") {
  // The inner server makes its 16 tokens 20 ms apart. Proxied as one event at the end, the time to first token
  // would be the whole latency; streamed on, it is a small part of it.
  ServerThread inner(std::make_unique<KeyGenerator>(milliseconds(20)));
  ServerThread outer(testing::remote_generator(inner.url()));
  for (const Endpoint endpoint : {Endpoint::completions, Endpoint::chat}) {
    INFO("endpoint " << endpoint_path(endpoint));
    const auto outcomes = complete_all(client_for(outer, endpoint, true),
                                       {key_sample("0123456789abcdef", 16), key_sample("1234", 16, {"3"})});
    const auto& reply = reply_of(outcomes[0]);
    CHECK(reply.text == "0123456789abcdef");
    CHECK(reply.text_chunks >= 16);
    CHECK(reply.first_token_seconds < reply.total_seconds / 2);  // 15 pauses of 20 ms come after the first token
    CHECK(reply.first_token_seconds < reply.last_text_seconds);
    CHECK(reply_of(outcomes[1]).text == "12");
    CHECK(reply_of(outcomes[1]).finish_reason == "stop");
  }
}

TEST_CASE("serve --engine remote: a client that goes away stops the upstream generation too",
          "[remote][serve][proxy]") {
  // 500 tokens 20 ms apart: 10 s of work for each server's single worker, unless the cancellation reaches both.
  ServerThread inner(std::make_unique<KeyGenerator>(milliseconds(20)));
  ServerThread outer(testing::remote_generator(inner.url()));
  const auto leave = [](std::string_view) { throw std::length_error("the client leaves after the first token"); };
  CHECK_THROWS_AS(
      complete_streaming(client_for(outer, Endpoint::completions, true), key_sample(std::string(500, '9'), 500), leave),
      std::length_error);
  const Stopwatch watch;
  const auto next = complete_all(client_for(outer, Endpoint::completions, true), {key_sample("42")});
  CHECK(reply_of(next[0]).text == "42");
  CHECK(watch.seconds() < 5);  // the client's timeout is 5 s too: well before the abandoned answer's 10 s
}

TEST_CASE("the remote engine's generate_stream hands text on as it arrives, cut before a stop string",
          "[remote][stop]") {
  // A server that ignores stop strings: the text stops before one all the same, and what may begin one waits.
  testing::ScriptedServer ignoring([](int, const std::string&) {
    return testing::Script{testing::sse_reply(testing::completion_events("12ab34"))};
  });
  std::vector<std::string> pieces;
  const auto collect = [&](std::string_view piece) { pieces.emplace_back(piece); };
  const auto stopped = testing::remote_generator(ignoring.url())->generate_stream(key_sample("x", 8, {"ab"}), collect);
  CHECK(stopped.text == "12");
  CHECK(pieces == std::vector<std::string>{"1", "2"});
  pieces.clear();
  const auto held = testing::remote_generator(ignoring.url())->generate_stream(key_sample("x", 8, {"ac"}), collect);
  CHECK(held.text == "12ab34");
  CHECK(pieces == std::vector<std::string>{"1", "2", "ab", "3", "4"});  // "a" waited for the "b"
  CHECK(held.generated_tokens == 3);                                    // the server's usage count
  CHECK_FALSE(std::isnan(held.decode_seconds));                         // measured between the streamed events

  // Not streamed: the whole text is one piece.
  testing::ScriptedServer whole([](int, const std::string&) {
    return testing::Script{testing::http_reply(200, "application/json", testing::completion_json("12ab34"))};
  });
  pieces.clear();
  const auto one =
      testing::remote_generator(whole.url(), {{"stream", false}})->generate_stream(key_sample("x", 8, {"ac"}), collect);
  CHECK(one.text == "12ab34");
  CHECK(pieces == std::vector<std::string>{"12ab34"});
  CHECK(std::isnan(one.decode_seconds));
}

TEST_CASE("a remote cell stores its time to first token below the total, and no decode time when not streamed",
          "[remote][serve][runner]") {
  ServerThread server(std::make_unique<KeyGenerator>(milliseconds(3)));
  const auto suite_for = [&](bool stream) {
    const Json suite_json = {
        {"name", "remote-times"},
        {"engines",
         {{{"name", "remote"}, {"params", {{"base_url", server.url()}, {"model", "m"}, {"stream", stream}}}}}},
        {"tasks", {{{"name", "test_remote_keys"}, {"params", {{"samples", 3}}}}}},
        {"context_lengths", {64}}};
    return parse_suite(suite_json, "remote-times.json");
  };
  testing::TempDir dir;
  Store store(dir.file("t.db"));
  std::FILE* sink = std::fopen("/dev/null", "w");
  const auto streamed = run_suite(suite_for(true), store, {.log = sink, .isolate = false});
  const auto whole = run_suite(suite_for(false), store, {.log = sink, .isolate = false});
  std::fclose(sink);
  const auto metrics_of = [&](std::int64_t run) {
    const auto cells = store.cells(run);
    REQUIRE(cells.size() == 1);
    std::map<std::string, Measurement> m;
    for (const auto& measurement : cells[0].measurements) m[measurement.metric] = measurement;
    return m;
  };
  const auto s = metrics_of(streamed.run_id);
  REQUIRE(s.at("first_token_seconds").repetitions.size() == 3);
  for (int i = 0; i < 3; ++i)
    CHECK(s.at("first_token_seconds").repetitions[i] < s.at("latency_seconds").repetitions[i]);
  CHECK(s.at("decode_seconds_per_token").value() > 0);
  // Not streamed: the tokens came in one piece, so there is no time between them: NULL, not 0.
  const auto w = metrics_of(whole.run_id);
  REQUIRE(w.contains("decode_seconds_per_token"));
  CHECK(std::isnan(w.at("decode_seconds_per_token").value()));
  std::string report;
  REQUIRE(testing::run_shell(testing::ctxbench_binary() + " export --format json --run " +
                                 std::to_string(whole.run_id) + " --db " + dir.file("t.db"),
                             &report) == 0);
  const Json exported = Json::parse(report);  // named: a temporary would die before the loop below reads it
  bool found = false;
  for (const auto& row : exported["runs"][0]["results"]) {
    if (row["metric"] != "decode_seconds_per_token") continue;
    found = true;
    CHECK(row["value"].is_null());
  }
  CHECK(found);
}

TEST_CASE("a remote cell against serve: N requests in flight, latency percentiles and throughput",
          "[remote][serve][runner]") {
  for (const int concurrency : {1, 4}) {
    INFO("concurrency " << concurrency);
    ServerThread server(std::make_unique<KeyGenerator>(milliseconds(2)));
    const Json suite_json = {
        {"name", "remote-load"},
        {"engines",
         {{{"name", "remote"},
           {"params", {{"base_url", server.url() + "/v1"}, {"model", "m"}, {"concurrency", concurrency}}}}}},
        {"tasks", {{{"name", "test_remote_keys"}, {"params", {{"samples", 8}}}}}},
        {"context_lengths", {64}}};
    const auto output = run_cell(parse_suite(suite_json, "remote-load.json").cells().at(0));
    std::map<std::string, Measurement> m;
    for (const auto& measurement : output.measurements) m[measurement.metric] = measurement;
    CHECK(m.at("accuracy").value() == 100);
    CHECK(m.at("samples").value() == 8);
    CHECK(m.at("prompt_tokens").value() == 64);
    CHECK(m.at("server_prompt_tokens").repetitions == std::vector<double>(8, 64));  // the test generator counts bytes
    CHECK(m.at("generated_tokens").value() == 4);
    CHECK(m.at("latency_seconds").repetitions.size() == 8);
    CHECK(m.at("latency_p50_seconds").value() <= m.at("latency_p90_seconds").value());
    CHECK(m.at("latency_p90_seconds").value() <= m.at("latency_p99_seconds").value());
    CHECK(m.at("first_token_p50_seconds").value() <= m.at("latency_p50_seconds").value());
    CHECK(m.at("decode_seconds_per_token").value() > 0);
    CHECK(m.at("throughput_requests_per_second").value() > 0);
    CHECK(m.at("throughput_output_tokens_per_second").value() ==
          Approx(4 * m.at("throughput_requests_per_second").value()));
    CHECK(m.at("concurrency").value() == concurrency);
    CHECK(testing::uncatalogued(output.measurements) == std::vector<std::string>{});
    REQUIRE(output.samples.size() == 8);
    CHECK(output.samples[3].prediction == "1021");
    if (concurrency == 1) {
      CHECK(server.server().stats().peak_active == 1);
    } else {
      CHECK(server.server().stats().peak_active >= 2);  // the requests overlapped
      CHECK(server.server().stats().peak_active <= concurrency);
    }
  }
}

TEST_CASE("serve rejects malformed requests with a JSON error and serves the rest of the API", "[remote][serve]") {
  auto options = ServerThread::quiet();
  options.max_request_bytes = 4096;
  options.max_header_bytes = 2048;
  options.model_name = "tiny";
  ServerThread server(std::make_unique<KeyGenerator>(), options);
  const int port = server.port();
  auto exchange = [&](const std::string& bytes) { return testing::raw_exchange(port, bytes, 5); };

  const auto not_json = exchange(testing::post("/v1/completions", "{nope"));
  CHECK(testing::status_of(not_json) == 400);
  CHECK(json_body(not_json).at("error").at("type") == "invalid_request_error");
  CHECK_THAT(json_body(not_json).at("error").at("message").get<std::string>(), Catch::Contains("not valid JSON"));
  const auto no_prompt = exchange(testing::post("/v1/completions", R"({"model": "tiny"})"));
  CHECK(testing::status_of(no_prompt) == 400);
  CHECK(json_body(no_prompt).at("error").at("param") == "prompt");
  const auto garbage = exchange("\x16\x03\x01 hello there\r\n\r\n");
  CHECK(testing::status_of(garbage) == 400);
  CHECK_THAT(json_body(garbage).at("error").at("message").get<std::string>(), Catch::Contains("malformed HTTP"));
  CHECK(testing::status_of(exchange(testing::post("/v1/completions", std::string(5000, ' ')))) == 413);
  CHECK(testing::status_of(exchange("GET /health HTTP/1.1\r\nX: " + std::string(3000, 'a') + "\r\n\r\n")) == 431);
  CHECK(testing::status_of(exchange(testing::post("/v2/nothing", "{}"))) == 404);
  CHECK(testing::status_of(exchange("GET /v1/completions HTTP/1.1\r\nConnection: close\r\n\r\n")) == 405);
  CHECK(server.server().stats().client_errors == 7);
  // Both closed the connection without a reply before (a JSON type error escaped; a target that is not UTF-8
  // could not be echoed into the JSON error): found while writing the http_request fuzz target.
  const auto typed_part =
      exchange(testing::post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": [{"type": 5}]}]})"));
  CHECK(testing::status_of(typed_part) == 400);
  CHECK(json_body(typed_part).at("error").at("param") == "messages[0].content");
  const auto binary_target = exchange("GET /\xff\xfe HTTP/1.1\r\nConnection: close\r\n\r\n");
  CHECK(testing::status_of(binary_target) == 404);
  CHECK_THAT(json_body(binary_target).at("error").at("message").get<std::string>(), Catch::Contains("no route /"));

  const auto models = exchange("GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n");
  CHECK(json_body(models).at("data").at(0).at("id") == "tiny");
  CHECK(json_body(exchange("GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")).at("status") == "ok");

  // Token ids, batches, max_tokens 0 and Expect: 100-continue.
  const auto tokens =
      exchange(testing::post("/v1/completions", R"({"prompt": [84,104,101,32,107,101,121,32,105,115,32,55,46]})"));
  CHECK(json_body(tokens).at("choices").at(0).at("text") == "7");
  const auto batch =
      json_body(exchange(testing::post("/v1/completions", R"({"prompt": ["The key is 1.", "The key is 22."]})")));
  CHECK(batch.at("choices").at(1).at("text") == "22");
  CHECK(batch.at("choices").at(1).at("index") == 1);
  CHECK(batch.at("usage").at("completion_tokens") == 3);
  const auto nothing =
      json_body(exchange(testing::post("/v1/completions", R"({"prompt": "The key is 5.", "max_tokens": 0})")));
  CHECK(nothing.at("choices").at(0).at("text") == "");
  CHECK(nothing.at("choices").at(0).at("finish_reason") == "length");
  CHECK(nothing.at("usage").at("prompt_tokens") == 13);
  const auto continued =
      exchange(testing::post("/v1/completions", R"({"prompt": "The key is 8."})", "Expect: 100-continue\r\n"));
  CHECK(continued.rfind("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK", 0) == 0);

  // Two requests on one connection.
  const std::string first_body = R"({"prompt": "key is 31."})";
  const std::string first =
      "POST /v1/completions HTTP/1.1\r\nContent-Length: " + std::to_string(first_body.size()) + "\r\n\r\n" + first_body;
  const auto both = exchange(first + testing::post("/v1/completions", R"({"prompt": "key is 42."})"));
  CHECK(both.find("\"text\":\"31\"") != std::string::npos);
  CHECK(both.find("\"text\":\"42\"") != std::string::npos);

  // A failing generator: 500 before the reply starts; an error event (and no [DONE]) once streaming.
  const auto failed = exchange(testing::post("/v1/completions", R"({"prompt": "FAIL"})"));
  CHECK(testing::status_of(failed) == 500);
  CHECK(json_body(failed).at("error").at("type") == "server_error");
  const auto failed_stream = exchange(testing::post("/v1/completions", R"({"prompt": "FAIL", "stream": true})"));
  CHECK(testing::status_of(failed_stream) == 200);
  CHECK(failed_stream.find("the test generator was told to fail") != std::string::npos);
  CHECK(failed_stream.find("[DONE]") == std::string::npos);
  const auto failed_client =
      complete_all(client_for(server, Endpoint::completions, true), {{"FAIL", {}, 4, {}, Json()}});
  CHECK_THAT(failed_client[0].error, Catch::Contains("server error: generation failed"));
}

TEST_CASE("serve survives a flood of connections, bounded, and answers afterwards", "[remote][serve][flood]") {
  auto options = ServerThread::quiet();
  options.max_connections = 16;
  options.idle_timeout_seconds = 0.5;
  ServerThread server(std::make_unique<KeyGenerator>(), options);
  const auto rss_kib = [] {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return 0L;
  };
  const long rss_before = rss_kib();

  constexpr int kClients = 200;
  enum Kind { valid, garbage, silent_close, huge_body, slow_header, kinds };
  std::vector<std::string> replies(kClients);
  std::vector<bool> finished(kClients, false);
  asio::io_context io;
  auto client = [&](int i) -> asio::awaitable<void> {
    tcp::socket socket(io);
    boost::system::error_code error;
    co_await socket.async_connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(server.port())},
                                  asio::redirect_error(asio::use_awaitable, error));
    std::string bytes;
    switch (i % kinds) {
      case valid:
        bytes = testing::post("/v1/completions", "{\"prompt\": \"The key is " + std::to_string(i) + ".\"}");
        break;
      case garbage: bytes = std::string(300, static_cast<char>('A' + i % 26)) + "\r\n\r\n"; break;
      case silent_close: break;
      case huge_body:
        bytes = "POST /v1/completions HTTP/1.1\r\nContent-Length: 10000000000\r\n\r\n{\"prompt\": ";
        break;
      case slow_header: bytes = "POST /v1/completions HTTP/1.1\r\nContent-"; break;
    }
    if (!error && !bytes.empty())
      co_await asio::async_write(socket, asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, error));
    if (i % kinds == silent_close) socket.close(error);
    char chunk[4096];
    while (!error) {
      const std::size_t n =
          co_await socket.async_read_some(asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, error));
      replies[i].append(chunk, n);
    }
    finished[i] = true;
  };
  for (int i = 0; i < kClients; ++i) asio::co_spawn(io, client(i), asio::detached);
  io.run_for(std::chrono::seconds(10));
  CHECK(std::count(finished.begin(), finished.end(), true) == kClients);  // every connection ended

  // Over the limit a connection gets 503, or, when as many are already being turned away, is closed at once:
  // either way it costs the server next to nothing. Every reply that does come is the right one for the request.
  int answered = 0, closed_unanswered = 0;
  for (int i = 0; i < kClients; ++i) {
    INFO("client " << i << " got: " << replies[i].substr(0, 200));
    const int status = testing::status_of(replies[i]);
    const Kind kind = static_cast<Kind>(i % kinds);
    if (status == 503) {
      CHECK(json_body(replies[i]).at("error").at("type") == "server_busy");
      continue;
    }
    if (status == 0 && kind != silent_close && kind != slow_header) {
      ++closed_unanswered;
      continue;
    }
    switch (kind) {
      case valid:
        CHECK(status == 200);
        ++answered;
        CHECK(json_body(replies[i]).at("choices").at(0).at("text") == std::to_string(i));
        break;
      case garbage: CHECK(status == 400); break;
      case huge_body: CHECK(status == 413); break;
      case silent_close:
      case slow_header: CHECK(status == 0); break;  // nothing to answer; the slow one is cut by the idle timeout
      case kinds: break;
    }
  }
  CHECK(answered > 0);
  const auto stats = server.server().stats();
  CHECK(stats.peak_active <= 16);
  CHECK(stats.accepted == kClients);
  CHECK(closed_unanswered <= stats.rejected_busy);
  CHECK(eventually([&] { return server.server().stats().active == 0; }));
  CHECK(rss_kib() - rss_before < 64 * 1024);  // nothing like 200 x 10 GB was buffered

  const auto after = complete_all(client_for(server, Endpoint::chat, true), {key_sample("555")});
  CHECK(reply_of(after[0]).text == "555");
}

TEST_CASE("serve shuts down gracefully: replies in progress finish, idle connections close", "[remote][serve]") {
  auto options = ServerThread::quiet();
  options.idle_timeout_seconds = 20;  // so that only the shutdown can close the idle connection quickly
  ServerThread server(std::make_unique<KeyGenerator>(milliseconds(30)), options);
  const int port = server.port();

  std::vector<Outcome> outcome;
  std::thread request(
      [&] { outcome = complete_all(client_for(server, Endpoint::completions, true), {key_sample("123456")}); });
  std::string idle_reply = "not closed";
  double idle_seconds = 0;
  std::thread idle([&] {
    const Stopwatch watch;
    idle_reply = testing::raw_exchange(port, "", 8);
    idle_seconds = watch.seconds();
  });
  REQUIRE(eventually([&] { return server.server().stats().requests == 1 && server.server().stats().active == 2; }));
  const Stopwatch watch;
  server.stop();  // returns once the server has stopped
  request.join();
  idle.join();
  CHECK(reply_of(outcome.at(0)).text == "123456");  // finished after the shutdown began
  CHECK(idle_reply.empty());
  CHECK(idle_seconds < 5);
  CHECK(watch.seconds() < 5);
  CHECK(testing::raw_exchange(port, "GET /health HTTP/1.1\r\n\r\n", 1).empty());  // no longer listening
}

namespace {

struct Child {
  pid_t pid = -1;
  int out = -1;  // its stdout and stderr
};

Child spawn(const std::vector<std::string>& args) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  Child child;
  REQUIRE(posix_spawn(&child.pid, argv[0], &actions, nullptr, argv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  child.out = fds[0];
  fcntl(child.out, F_SETFL, O_NONBLOCK);
  return child;
}

// Reads the child's output until it contains `what`, the pipe closes, or `seconds` pass.
std::string read_until(const Child& child, const std::string& what, double seconds) {
  std::string out;
  const Stopwatch watch;
  while (out.find(what) == std::string::npos && watch.seconds() < seconds) {
    pollfd fd{child.out, POLLIN, 0};
    if (poll(&fd, 1, 50) <= 0) continue;
    char chunk[1024];
    const ssize_t n = read(child.out, chunk, sizeof chunk);
    if (n <= 0) break;
    out.append(chunk, n);
  }
  return out;
}

// The exit status, or -1 after killing a child that did not exit within `seconds`.
int wait_exit(const Child& child, double seconds) {
  const Stopwatch watch;
  int status = 0;
  while (watch.seconds() < seconds) {
    if (waitpid(child.pid, &status, WNOHANG) == child.pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
    std::this_thread::sleep_for(milliseconds(10));
  }
  kill(child.pid, SIGKILL);
  waitpid(child.pid, &status, 0);
  return -1;
}

// The port a spawned `ctxbench serve --port 0` printed, its output so far in `out`; fails the test (after killing
// the child) when it printed none.
int served_port(const Child& child, std::string& out) {
  out = read_until(child, "\n", 10);
  const auto at = out.find("http://127.0.0.1:");
  INFO(out);
  if (at == std::string::npos) wait_exit(child, 0);
  REQUIRE(at != std::string::npos);
  return std::stoi(out.substr(at + 17));
}

std::string served_model_id(int port) {
  return json_body(testing::raw_exchange(port, "GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n", 5))
      .at("data")
      .at(0)
      .at("id");
}

}  // namespace

TEST_CASE("ctxbench serve as a process: proxies a remote engine, exits cleanly on SIGTERM", "[remote][serve][cli]") {
  ServerThread upstream(std::make_unique<KeyGenerator>());
  const Json params = {{"base_url", upstream.url()}, {"model", "m"}, {"retries", 0}};
  const Child child = spawn({testing::ctxbench_binary(), "serve", "--engine", "remote", "--engine-params",
                             params.dump(), "--port", "0", "--host", "127.0.0.1"});
  std::string out;
  const int port = served_port(child, out);

  const auto reply =
      testing::raw_exchange(port, testing::post("/v1/completions", R"({"prompt": "The key is 640."})"), 5);
  CHECK(testing::status_of(reply) == 200);
  if (testing::status_of(reply) == 200) CHECK(json_body(reply).at("choices").at(0).at("text") == "640");
  CHECK(served_model_id(port) == "remote");

  kill(child.pid, SIGTERM);
  out += read_until(child, "stopped", 5);
  CHECK(wait_exit(child, 5) == 0);
  CHECK_THAT(out, Catch::Contains("shutting down") && Catch::Contains("stopped"));
  close(child.out);
}

TEST_CASE("ctxbench serve with no options serves dense attention on the bundled model", "[remote][serve][cli]") {
  const Child child = spawn({testing::ctxbench_binary(), "serve", "--port", "0"});
  std::string out;
  const int port = served_port(child, out);
  CHECK(served_model_id(port) == "dense");
  const auto reply = testing::raw_exchange(
      port, testing::post("/v1/completions", R"({"prompt": "The pass key is 31415.", "max_tokens": 2})"), 10);
  CHECK(testing::status_of(reply) == 200);
  kill(child.pid, SIGTERM);
  CHECK(wait_exit(child, 5) == 0);
  close(child.out);
}

TEST_CASE("ctxbench serve: bad input exits 2 with a message", "[remote][serve][cli]") {
  std::string out;
  CHECK(testing::run_shell(testing::ctxbench_binary() + " serve --engine remote --engine-params '{\"model\": 1}'",
                           &out) == 2);
  CHECK_THAT(out, Catch::Contains("--engine-params.base_url: required"));
  CHECK(testing::run_shell(testing::ctxbench_binary() + " serve --engine nosuch", &out) == 2);
  CHECK_THAT(out, Catch::Contains("unknown name \"nosuch\""));
  CHECK(testing::run_shell(testing::ctxbench_binary() + " serve --model /no/such/model", &out) == 2);
  CHECK_THAT(out, Catch::Contains("/no/such/model/config.json: cannot be read"));
  CHECK(testing::run_shell(testing::ctxbench_binary() + " serve --prompt-template 'Q: A:'", &out) == 2);
  CHECK_THAT(out, Catch::Contains("prompt_template") && Catch::Contains("{prompt}"));
  CHECK(testing::run_shell(testing::ctxbench_binary() +
                               " serve --engine remote --engine-params '{\"base_url\": \"http://127.0.0.1:9\", "
                               "\"model\": \"m\"}' --prompt-template '{prompt}'",
                           &out) == 2);
  CHECK_THAT(out, Catch::Contains("--prompt-template: engine remote answers text itself"));
  CHECK(testing::run_shell(testing::ctxbench_binary() + " serve --engine remote --engine-params '{'", &out) == 2);
  CHECK_THAT(out, Catch::Contains("--engine-params: not valid JSON"));
  CHECK(testing::run_shell(testing::ctxbench_binary() + " serve --engine remote --engine-params '{\"base_url\": "
                                                        "\"http://127.0.0.1:9\", \"model\": \"m\"}' --port 70000",
                           &out) == 2);
  CHECK_THAT(out, Catch::Contains("--port: expected a number in [0, 65535]"));
}
