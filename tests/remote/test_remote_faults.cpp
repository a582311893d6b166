// The remote engine against servers that misbehave: every fault ends in a retry or in a failure that says
// what happened, quickly, and a failing cell does not take other cells with it.
#include <catch2/catch.hpp>

#include "core/timer.h"
#include "harness/runner.h"
#include "remote/client.h"
#include "tasks/task.h"
#include "tests/helpers.h"
#include "tests/remote/remote_support.h"

using namespace ctxbench;
using namespace ctxbench::remote;
using testing::Script;
using testing::ScriptedServer;

namespace {

ClientOptions fast_options(const std::string& url, bool stream = true) {
  ClientOptions options;
  options.url = parse_base_url(url);
  options.model = "test";
  options.timeout_seconds = 5;  // generous: a loaded CI machine must not turn a prompt reply into a timeout
  options.retries = 2;
  options.backoff_seconds = 0.01;
  options.stream = stream;
  return options;
}

const TextSample kSample{"The key is 17.", {"17"}, 4, {}, Json()};

Outcome one(const ClientOptions& options) { return complete_all(options, {kSample}).at(0); }

// Failing for good: no reply, the reason, and the attempts it took.
void check_failed(const Outcome& outcome, const std::string& reason, int attempts) {
  INFO(outcome.error);
  CHECK_FALSE(outcome.reply);
  CHECK_THAT(outcome.error, Catch::Contains(reason));
  CHECK(outcome.attempts == attempts);
}

}  // namespace

TEST_CASE("remote faults: connection refused is retried, then fails naming it", "[remote][faults]") {
  const Stopwatch watch;
  const auto outcome = one(fast_options("http://127.0.0.1:" + std::to_string(testing::closed_port())));
  check_failed(outcome, "refused", 3);
  CHECK_THAT(outcome.error, Catch::Contains("attempt 3 of 3"));
  CHECK(watch.seconds() < 5);
}

TEST_CASE("remote faults: a server that stalls times out (never hangs)", "[remote][faults]") {
  ScriptedServer silent([](int, const std::string&) { return Script{"", true}; });
  auto options = fast_options(silent.url());
  options.timeout_seconds = 0.3;
  options.retries = 1;
  const Stopwatch watch;
  check_failed(one(options), "timed out after 0.3 s while waiting for the reply", 2);
  CHECK(watch.seconds() < 5);
  CHECK(silent.requests() == 2);

  // Stalling in the middle of a stream: the wait for the next event times out too.
  ScriptedServer trickle([](int, const std::string&) {
    return Script{testing::sse_reply("data: {\"choices\": [{\"text\": \"1\"}]}\n\n"), true};
  });
  options.url = parse_base_url(trickle.url());
  check_failed(one(options), "timed out after 0.3 s while reading the reply", 2);
}

TEST_CASE("remote faults: HTTP 500 is retried with backoff and can recover", "[remote][faults]") {
  ScriptedServer flaky([](int i, const std::string&) {
    if (i < 2) return Script{testing::http_reply(500, "application/json", R"({"error": {"message": "busy"}})")};
    return Script{testing::sse_reply(testing::completion_events("17"))};
  });
  const auto outcome = one(fast_options(flaky.url()));
  REQUIRE(outcome.reply);
  CHECK(outcome.attempts == 3);
  CHECK(outcome.reply->text == "17");
  CHECK(outcome.reply->text_chunks == 2);
  REQUIRE(outcome.reply->usage);
  CHECK(outcome.reply->usage->prompt_tokens == 11);

  ScriptedServer broken(
      [](int, const std::string&) { return Script{testing::http_reply(503, "text/plain", "overloaded")}; });
  check_failed(one(fast_options(broken.url())), "HTTP 503 X: overloaded", 3);
  CHECK(broken.requests() == 3);

  ScriptedServer refusing([](int, const std::string&) {
    return Script{testing::http_reply(400, "application/json", R"({"error": {"message": "bad model"}})")};
  });
  const auto rejected = one(fast_options(refusing.url()));
  check_failed(rejected, "bad model", 1);  // a 4xx is the request's fault: retrying would not help
  CHECK_THAT(rejected.error, Catch::Contains("not retried"));
}

TEST_CASE("remote faults: a connection closed mid-stream is retried, for good it fails", "[remote][faults]") {
  const std::string half = testing::sse_reply("data: {\"choices\": [{\"text\": \"1\", \"finish_reason\": null}]}\n\n");
  ScriptedServer once([&](int i, const std::string&) {
    return Script{i == 0 ? half : testing::sse_reply(testing::completion_events("17"))};
  });
  const auto recovered = one(fast_options(once.url()));
  REQUIRE(recovered.reply);
  CHECK(recovered.reply->text == "17");  // the partial first attempt left nothing behind
  CHECK(recovered.attempts == 2);

  ScriptedServer always([&](int, const std::string&) { return Script{half}; });
  check_failed(one(fast_options(always.url())), "the stream ended before [DONE]", 3);

  // Chunked transfer cut inside a chunk: the HTTP layer notices.
  ScriptedServer cut([](int, const std::string&) {
    return Script{
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n40\r\ndata: {"};
  });
  check_failed(one(fast_options(cut.url())), "closed the connection while reading the reply", 3);

  // A Content-Length the body never reaches.
  ScriptedServer short_body([](int, const std::string&) {
    return Script{"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"choices\""};
  });
  check_failed(one(fast_options(short_body.url(), false)), "closed the connection", 3);
}

TEST_CASE("remote faults: a generation streamed on is retried only before its first text went out",
          "[remote][faults]") {
  const Json params = {{"timeout_seconds", 5}, {"retries", 2}, {"backoff_seconds", 0.01}};
  std::string streamed;
  int pieces = 0;
  const auto collect = [&](std::string_view piece) {
    streamed += piece;
    ++pieces;
  };
  // A failure before any text: retried, and the text goes on once.
  ScriptedServer busy_once([](int i, const std::string&) {
    if (i == 0) return Script{testing::http_reply(503, "text/plain", "busy")};
    return Script{testing::sse_reply(testing::completion_events("17"))};
  });
  const auto recovered = testing::remote_generator(busy_once.url(), params)->generate_stream(kSample, collect);
  CHECK(recovered.text == "17");
  CHECK(streamed == "17");
  CHECK(pieces == 2);
  CHECK(busy_once.requests() == 2);

  // Closed after "1" went on: a retry would hand "1" on again, so the generation fails instead.
  ScriptedServer cut([](int, const std::string&) {
    return Script{testing::sse_reply("data: {\"choices\": [{\"text\": \"1\", \"finish_reason\": null}]}\n\n")};
  });
  streamed.clear();
  CHECK_THROWS_WITH(testing::remote_generator(cut.url(), params)->generate_stream(kSample, collect),
                    Catch::Contains("the stream ended before [DONE]") &&
                        Catch::Contains("attempt 1 of 3, not retried: text was already streamed on"));
  CHECK(streamed == "1");
  CHECK(cut.requests() == 1);
  check_failed(one(fast_options(cut.url())), "the stream ended before [DONE]", 3);  // nothing went on: retried
}

TEST_CASE("remote faults: what the receiver of streamed text throws ends the request and reaches the caller",
          "[remote][faults]") {
  ScriptedServer once(
      [](int, const std::string&) { return Script{testing::sse_reply(testing::completion_events("17"))}; });
  const auto refuse = [](std::string_view) { throw std::length_error("enough"); };
  CHECK_THROWS_AS(complete_streaming(fast_options(once.url()), kSample, refuse), std::length_error);
  CHECK(once.requests() == 1);  // not a failed attempt: not retried
}

TEST_CASE("remote faults: malformed JSON and broken SSE frames fail with the reason", "[remote][faults]") {
  ScriptedServer bad_json([](int, const std::string&) {
    return Script{testing::http_reply(200, "application/json", "{\"choices\": [oops")};
  });
  check_failed(one(fast_options(bad_json.url(), false)), "malformed JSON in the reply", 1);

  ScriptedServer bad_event([](int, const std::string&) {
    return Script{testing::sse_reply("data: {\"choices\": [{\"text\": \"1\"}]}\n\ndata: {not json}\n\n")};
  });
  check_failed(one(fast_options(bad_event.url())), "malformed JSON in the SSE event", 1);

  ScriptedServer unfinished_frame([](int, const std::string&) {
    return Script{testing::sse_reply("data: {\"choices\": [{\"text\": \"1\"}]}\n\ndata: {\"choices\": [{\"te")};
  });
  check_failed(one(fast_options(unfinished_frame.url())), "inside an SSE event (broken frame)", 3);

  ScriptedServer wrong_shape([](int, const std::string&) {
    return Script{testing::sse_reply("data: {\"choices\": [{\"text\": 5}]}\n\ndata: [DONE]\n\n")};
  });
  check_failed(one(fast_options(wrong_shape.url())), "$.choices[0].text: expected a string", 1);

  ScriptedServer error_event([](int, const std::string&) {
    return Script{testing::sse_reply("data: {\"error\": {\"message\": \"CUDA out of memory\"}}\n\n")};
  });
  check_failed(one(fast_options(error_event.url())), "server error: CUDA out of memory", 1);

  ScriptedServer endless_event(
      [](int, const std::string&) { return Script{testing::sse_reply("data: " + std::string((1 << 20) + 10, 'x'))}; });
  check_failed(one(fast_options(endless_event.url())), "an SSE event longer than", 1);

  ScriptedServer not_http([](int, const std::string&) { return Script{"SSH-2.0-OpenSSH\r\n\r\n"}; });
  check_failed(one(fast_options(not_http.url())), "while waiting for the reply", 3);
}

TEST_CASE("remote faults: concurrency keeps N requests in flight and stops after a failure", "[remote][faults]") {
  ScriptedServer slow([&](int, const std::string& body) {
    const std::string answer = testing::KeyGenerator::answer(Json::parse(body).at("prompt").get<std::string>());
    return Script{testing::http_reply(200, "application/json", testing::completion_json(answer)), false,
                  std::chrono::milliseconds(40)};
  });
  std::vector<TextSample> samples;
  for (int i = 0; i < 6; ++i) samples.push_back({"The key is " + std::to_string(100 + i) + ".", {}, 4, {}, Json()});
  auto options = fast_options(slow.url(), false);
  options.concurrency = 3;
  const auto outcomes = complete_all(options, samples);
  for (int i = 0; i < 6; ++i) {
    REQUIRE(outcomes[i].reply);
    CHECK(outcomes[i].reply->text == std::to_string(100 + i));  // in sample order whatever the finishing order
  }
  CHECK(slow.peak_in_flight() == 3);

  ScriptedServer sequential([&](int, const std::string&) {
    return Script{testing::http_reply(200, "application/json", testing::completion_json("x")), false,
                  std::chrono::milliseconds(10)};
  });
  options = fast_options(sequential.url(), false);
  CHECK(complete_all(options, samples).back().reply);
  CHECK(sequential.peak_in_flight() == 1);

  ScriptedServer second_fails([](int i, const std::string&) {
    if (i == 1) return Script{testing::http_reply(400, "application/json", R"({"error": {"message": "no"}})")};
    return Script{testing::http_reply(200, "application/json", testing::completion_json("x"))};
  });
  options = fast_options(second_fails.url(), false);
  const auto stopped = complete_all(options, samples);
  CHECK(stopped[0].reply);
  CHECK_FALSE(stopped[1].reply);
  for (int i = 2; i < 6; ++i) CHECK(stopped[i].error == "not sent: an earlier sample failed");
  CHECK(second_fails.requests() == 2);
}

TEST_CASE("remote faults: a failing server fails its cell with the reason stored, other cells are kept",
          "[remote][faults][runner]") {
  ScriptedServer good([](int, const std::string& body) {
    const std::string answer = testing::KeyGenerator::answer(Json::parse(body).at("prompt").get<std::string>());
    return Script{testing::sse_reply(testing::completion_events(answer))};
  });
  ScriptedServer bad([](int, const std::string&) {
    return Script{testing::http_reply(500, "application/json", R"({"error": {"message": "model crashed"}})")};
  });
  const Json suite_json = {
      {"name", "remote-faults"},
      {"engines",
       {{{"name", "remote"},
         {"label", "good"},
         {"params", {{"base_url", good.url()}, {"model", "m"}, {"timeout_seconds", 2}, {"backoff_seconds", 0.01}}}},
        {{"name", "remote"},
         {"label", "bad"},
         {"params", {{"base_url", bad.url()}, {"model", "m"}, {"retries", 1}, {"backoff_seconds", 0.01}}}}}},
      {"tasks", {{{"name", "test_remote_keys"}}}},
      {"context_lengths", {40}}};
  const auto suite = parse_suite(suite_json, "remote-faults.json");
  testing::TempDir dir;
  Store store(dir.file("r.db"));
  const auto summary = run_suite(suite, store, {.resume = false, .log = stderr});
  CHECK(summary.failed == 1);
  const auto cells = store.cells(summary.run_id);
  REQUIRE(cells.size() == 2);
  for (const auto& cell : cells) {
    INFO(cell.engine << ": " << cell.error);
    if (cell.engine == "bad") {
      CHECK(cell.status == "failed");
      CHECK_THAT(cell.error, Catch::Contains("sample 0") && Catch::Contains("HTTP 500") &&
                                 Catch::Contains("model crashed") && Catch::Contains("attempt 2 of 2"));
    } else {
      CHECK(cell.status == "ok");
      std::map<std::string, double> m;
      for (const auto& measurement : cell.measurements) m[measurement.metric] = measurement.value();
      CHECK(m.at("accuracy") == 100);
      CHECK(m.at("prompt_tokens") == 40);         // bytes: the remote engine's tokenizer
      CHECK(m.at("server_prompt_tokens") == 11);  // what the server said
      CHECK(m.at("generated_tokens") == 3);       // the server's completion_tokens
      CHECK(m.at("retries") == 0);
      CHECK_FALSE(m.contains("attention_share"));  // unknown for a server
    }
  }
  CHECK(bad.requests() == 2);  // the first sample, twice; no later sample was sent
}
