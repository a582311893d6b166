// The pure parts of the remote engine and serve: SSE parsing, stop strings, URLs, percentiles, the completion
// protocol on both sides, and the HTTP request parser of serve.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <map>

#include "core/random.h"
#include "remote/client.h"
#include "remote/http_request.h"
#include "remote/load.h"
#include "remote/openai.h"
#include "remote/sse.h"
#include "remote/stop_filter.h"

using namespace ctxbench;
using namespace ctxbench::remote;

namespace {

std::vector<std::string> data_of(const std::vector<SseEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.data);
  return out;
}

// Feeds `stream` to parse_sse in pieces cut at `cuts`, carrying the rest over, as the client does.
std::vector<SseEvent> parse_in_pieces(const std::string& stream, std::vector<std::size_t> cuts) {
  std::sort(cuts.begin(), cuts.end());
  cuts.push_back(stream.size());
  std::vector<SseEvent> out;
  std::string pending;
  std::size_t from = 0;
  for (const std::size_t cut : cuts) {
    pending += stream.substr(from, cut - from);
    from = cut;
    auto parsed = parse_sse(pending);
    pending = parsed.rest;
    out.insert(out.end(), parsed.events.begin(), parsed.events.end());
  }
  return out;
}

}  // namespace

TEST_CASE("parse_sse: fields, line endings, comments and unfinished events", "[remote][sse]") {
  CHECK(data_of(parse_sse("data: a\n\n").events) == std::vector<std::string>{"a"});
  CHECK(data_of(parse_sse("data: a\ndata: b\n\n").events) == std::vector<std::string>{"a\nb"});
  CHECK(data_of(parse_sse("data: a\r\n\r\ndata: b\r\rdata:c\n\n").events) == std::vector<std::string>{"a", "b", "c"});
  CHECK(data_of(parse_sse("data:  two spaces\n\n").events) == std::vector<std::string>{" two spaces"});
  CHECK(data_of(parse_sse(": keep-alive\n\ndata: x\n\n").events) == std::vector<std::string>{"x"});
  CHECK(data_of(parse_sse("data\n\n").events) == std::vector<std::string>{""});  // a field with no colon
  CHECK(parse_sse("event: ping\n\n").events.empty());                            // no data: dropped
  CHECK(parse_sse("bogus line\nretry: 10\n\n").events.empty());

  const auto named = parse_sse("event: update\nid: 7\ndata: {\"a\": 1}\n\n");
  REQUIRE(named.events.size() == 1);
  CHECK(named.events[0] == SseEvent{"update", "{\"a\": 1}", "7"});

  const auto partial = parse_sse("data: a\n\ndata: {\"half\"");
  CHECK(data_of(partial.events) == std::vector<std::string>{"a"});
  CHECK(partial.rest == "data: {\"half\"");
  CHECK(parse_sse("data: a\n").events.empty());  // the blank line has not come yet
  CHECK(parse_sse("data: a\n").rest == "data: a\n");
  CHECK(parse_sse("data: a\r").rest == "data: a\r");  // a '\r' at the end may be half of "\r\n"
  CHECK(parse_sse("data: a\r\n\r").events.empty());
  CHECK(data_of(parse_sse("data: a\r\n\r\n").events) == std::vector<std::string>{"a"});
}

TEST_CASE("parse_sse: any split of a random stream gives the events that were written", "[remote][sse]") {
  Rng rng(42);
  const std::string alphabet = "ab :{}\"0\x01\xc3\xa9";
  const std::vector<std::string> endings = {"\n", "\r\n", "\r"};
  auto ending = [&] { return endings[rng.integer(0, 2)]; };
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<std::string> written;
    std::string stream;
    for (int e = static_cast<int>(rng.integer(0, 5)); e > 0; --e) {
      if (rng.integer(0, 3) == 0) stream += ": comment" + ending();
      if (rng.integer(0, 3) == 0) stream += "event: kind" + ending();
      std::vector<std::string> lines;
      for (int l = static_cast<int>(rng.integer(1, 3)); l > 0; --l) {
        std::string line;
        for (int c = static_cast<int>(rng.integer(0, 8)); c > 0; --c)
          line += alphabet[rng.integer(0, alphabet.size() - 1)];
        const bool spaced = rng.integer(0, 1);
        stream += (spaced ? "data: " : "data:") + line + ending();
        // After "data:" one leading space belongs to the syntax, not to the data.
        lines.push_back(!spaced && !line.empty() && line[0] == ' ' ? line.substr(1) : line);
      }
      const std::string data = fmt::format("{}", fmt::join(lines, "\n"));
      // The blank line that ends the event; "\r" then "\n" would read as one line end.
      const std::string blank = ending();
      stream += stream.back() == '\r' && blank == "\n" ? "\r\n" : blank;
      written.push_back(data);
    }
    if (!stream.empty() && stream.back() == '\r') stream += '\n';  // a final bare '\r' waits for a possible '\n'
    const auto whole = parse_sse(stream);
    CHECK(whole.rest.empty());
    CHECK(data_of(whole.events) == written);
    std::vector<std::size_t> cuts;
    for (int c = static_cast<int>(rng.integer(0, 6)); c > 0; --c) cuts.push_back(rng.integer(0, stream.size()));
    CHECK(parse_in_pieces(stream, cuts) == whole.events);
  }
}

TEST_CASE("format_sse frames any data so that parse_sse gives it back", "[remote][sse]") {
  for (const std::string data : {"", "x", "{\"a\": [1, 2]}", "two\nlines", "\ntrailing\n", "[DONE]"}) {
    const auto parsed = parse_sse(format_sse(data));
    REQUIRE(parsed.events.size() == 1);
    CHECK(parsed.events[0].data == data);
    CHECK(parsed.rest.empty());
  }
}

TEST_CASE("StopFilter cuts streamed text where the whole text would be cut, for any split", "[remote][stop]") {
  Rng rng(7);
  auto random_text = [&](int min, int max) {
    std::string s;
    for (int n = static_cast<int>(rng.integer(min, max)); n > 0; --n) s += "abc"[rng.integer(0, 2)];
    return s;
  };
  for (int trial = 0; trial < 2000; ++trial) {
    const std::string text = random_text(0, 12);
    std::vector<std::string> stop;
    for (int n = static_cast<int>(rng.integer(0, 3)); n > 0; --n) stop.push_back(random_text(1, 3));
    // Reference: the earliest position where any stop string occurs.
    std::size_t cut = std::string::npos;
    for (const auto& s : stop) cut = std::min(cut, text.find(s));
    const std::string expected = text.substr(0, cut);

    StopFilter filter(stop);
    std::string out;
    std::size_t at = 0;
    while (at < text.size()) {
      const std::size_t n = rng.integer(1, 4);
      out += filter.push(text.substr(at, n));
      at += n;
    }
    out += filter.finish();
    INFO("text " << text << " stops " << fmt::format("{}", fmt::join(stop, ",")));
    CHECK(out == expected);
    CHECK(filter.stopped() == (cut != std::string::npos));
  }
  StopFilter none({});
  CHECK(none.push("abc") == "abc");
  StopFilter held({"\n\n"});
  CHECK(held.push("a\n") == "a");  // the '\n' may start the stop string
  CHECK(held.push("b") == "\nb");
  CHECK(held.push("\n\nc").empty());
  CHECK(held.stopped());
}

TEST_CASE("parse_base_url: http only, host, port and prefix", "[remote][client]") {
  const Url plain = parse_base_url("http://127.0.0.1:8000");
  CHECK(plain.host == "127.0.0.1");
  CHECK(plain.port == "8000");
  CHECK(plain.prefix.empty());
  CHECK(parse_base_url("http://127.0.0.1:8000/v1/").prefix.empty());
  CHECK(parse_base_url("http://localhost/proxy/v1").prefix == "/proxy");
  CHECK(parse_base_url("http://localhost/proxy/v1").port == "80");
  const Url v6 = parse_base_url("http://[::1]:9000");
  CHECK(v6.host == "::1");
  CHECK(v6.port == "9000");
  CHECK(plain.text() == "http://127.0.0.1:8000");
  CHECK_THROWS_WITH(parse_base_url("https://api.example.com"), Catch::Contains("https is not supported"));
  CHECK_THROWS_WITH(parse_base_url("ftp://x"), Catch::Contains("expected http://"));
  CHECK_THROWS_WITH(parse_base_url("http://:80"), Catch::Contains("no host"));
  CHECK_THROWS_WITH(parse_base_url("http://h:0"), Catch::Contains("port must be"));
  CHECK_THROWS_WITH(parse_base_url("http://h:99999"), Catch::Contains("port must be"));
  CHECK_THROWS_WITH(parse_base_url("http://h:8x"), Catch::Contains("port must be"));
  CHECK_THROWS_WITH(parse_base_url("http://h/v1?x=1"), Catch::Contains("query"));
}

TEST_CASE("percentile interpolates between ranks like Python's statistics.quantiles(inclusive)", "[remote][load]") {
  // Reference values from CPython's statistics.quantiles(data, n=100, method="inclusive").
  CHECK(percentile({1.0, 2.0}, 50) == Approx(1.5));
  CHECK(percentile({1.0, 2.0}, 90) == Approx(1.9));
  CHECK(percentile({1.0, 2.0}, 99) == Approx(1.99));
  CHECK(percentile({5, 1, 4, 2, 3}, 50) == Approx(3.0));
  CHECK(percentile({5, 1, 4, 2, 3}, 90) == Approx(4.6));
  CHECK(percentile({5, 1, 4, 2, 3}, 99) == Approx(4.96));
  const std::vector<double> mixed = {0.1, 0.9, 0.35, 0.35, 2.5, 7.25, 0.0};
  CHECK(percentile(mixed, 50) == Approx(0.35));
  CHECK(percentile(mixed, 90) == Approx(4.4));
  CHECK(percentile(mixed, 99) == Approx(6.965));
  CHECK(percentile(mixed, 0) == 0.0);
  CHECK(percentile(mixed, 100) == 7.25);
  CHECK(percentile({3.0}, 99) == 3.0);
  CHECK_THROWS(percentile({}, 50));
  CHECK_THROWS(percentile({1.0}, 101));

  LoadRecord record;
  record.latency_seconds = {1, 2, 3, 4};
  record.first_token_seconds = {0.5, 0.5, 1, 1};
  record.output_tokens = 40;
  record.wall_seconds = 2;
  record.retries = 3;
  record.concurrency = 2;
  std::map<std::string, double> by_name;
  for (const auto& m : load_measurements(record)) by_name[m.metric] = m.value();
  CHECK(by_name.at("latency_p50_seconds") == Approx(2.5));
  CHECK(by_name.at("latency_p90_seconds") == Approx(3.7));
  CHECK(by_name.at("first_token_p50_seconds") == Approx(0.75));
  CHECK(by_name.at("throughput_requests_per_second") == Approx(2.0));
  CHECK(by_name.at("throughput_output_tokens_per_second") == Approx(20.0));
  CHECK(by_name.at("retries") == 3);
  CHECK_FALSE(by_name.contains("server_prompt_tokens"));
}

TEST_CASE("request bodies and replies of the completion protocol", "[remote][protocol]") {
  const TextSample sample{"The key is 42.", {"42"}, 5, {"\n"}, Json()};
  const Json completion = make_request_body(Endpoint::completions, "m", sample, true);
  CHECK(completion.at("prompt") == "The key is 42.");
  CHECK(completion.at("max_tokens") == 5);
  CHECK(completion.at("temperature") == 0);
  CHECK(completion.at("stop") == Json::array({"\n"}));
  CHECK(completion.at("stream_options").at("include_usage") == true);
  const Json chat = make_request_body(Endpoint::chat, "m", sample, false);
  CHECK(chat.at("messages") == Json::parse(R"([{"role": "user", "content": "The key is 42."}])"));
  CHECK_FALSE(chat.contains("stream_options"));

  const auto whole = parse_reply(
      Endpoint::completions,
      Json::parse(
          R"({"choices": [{"text": "42", "finish_reason": "stop"}], "usage": {"prompt_tokens": 9, "completion_tokens": 1}})"),
      false);
  CHECK(whole.text == "42");
  CHECK(whole.finish_reason == "stop");
  REQUIRE(whole.usage);
  CHECK(whole.usage->prompt_tokens == 9);
  CHECK(whole.usage->completion_tokens == 1);
  const auto message = parse_reply(
      Endpoint::chat, Json::parse(R"({"choices": [{"message": {"role": "assistant", "content": "hi"}}]})"), false);
  CHECK(message.text == "hi");
  CHECK_FALSE(message.usage);
  const auto role_only =
      parse_reply(Endpoint::chat, Json::parse(R"({"choices": [{"delta": {"role": "assistant"}}]})"), true);
  CHECK(role_only.text.empty());
  const auto usage_chunk =
      parse_reply(Endpoint::completions,
                  Json::parse(R"({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}})"), true);
  CHECK(usage_chunk.usage->completion_tokens == 4);

  CHECK_THROWS_AS(parse_reply(Endpoint::completions, Json::parse(R"({"id": 1})"), false), ProtocolError);
  CHECK_THROWS_WITH(parse_reply(Endpoint::completions, Json::parse(R"({"choices": [{"text": 5}]})"), false),
                    Catch::Contains("$.choices[0].text: expected a string"));
  CHECK_THROWS_WITH(parse_reply(Endpoint::chat, Json::parse(R"({"choices": [{"text": "x"}]})"), false),
                    Catch::Contains("missing \"message\""));
  CHECK_THROWS_WITH(parse_reply(Endpoint::completions, Json::parse(R"({"choices": []})"), false),
                    Catch::Contains("empty"));
  CHECK_THROWS_WITH(
      parse_reply(Endpoint::completions,
                  Json::parse(R"({"choices": [{"text": ""}], "usage": {"prompt_tokens": -1, "completion_tokens": 0}})"),
                  false),
      Catch::Contains("usage.prompt_tokens"));
  CHECK_THROWS_WITH(parse_reply(Endpoint::completions, Json::parse(R"({"error": {"message": "out of memory"}})"), true),
                    Catch::Contains("server error: out of memory"));
}

TEST_CASE("serve's request parsing accepts the OpenAI forms and names the field it rejects", "[remote][protocol]") {
  const auto simple = parse_api_request(Endpoint::completions, R"({"model": "m", "prompt": "hello"})");
  REQUIRE(simple.prompts.size() == 1);
  CHECK(simple.prompts[0].text == "hello");
  CHECK(simple.max_tokens == 16);
  CHECK_FALSE(simple.stream);
  const auto batch = parse_api_request(
      Endpoint::completions, R"({"prompt": ["a", [104, 105]], "max_tokens": 3, "stop": "\n", "temperature": 1})");
  REQUIRE(batch.prompts.size() == 2);
  CHECK(batch.prompts[1].tokens == std::vector<int>{104, 105});
  CHECK(batch.stop == std::vector<std::string>{"\n"});
  CHECK(parse_api_request(Endpoint::completions, R"({"prompt": [1, 2, 3]})").prompts.size() == 1);
  const auto streamed = parse_api_request(Endpoint::chat, R"({"messages": [{"role": "system", "content": "be brief"},
                                       {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                         "stream": true, "stream_options": {"include_usage": true}, "max_completion_tokens": 9})");
  CHECK(streamed.prompts[0].text == "be brief\nhi");
  CHECK(streamed.stream);
  CHECK(streamed.include_usage);
  CHECK(streamed.max_tokens == 9);
  CHECK(parse_api_request(Endpoint::chat, R"({"messages": [{"role": "user", "content": "x"}]})").max_tokens == 256);

  const std::vector<std::pair<std::string, std::string>> rejected = {
      {R"(not json)", "not valid JSON"},
      {R"([1, 2])", "request body: expected a JSON object"},
      {R"({"model": "m"})", "prompt: expected"},
      {R"({"prompt": 7})", "prompt: expected"},
      {R"({"prompt": []})", "prompt: expected"},
      {R"({"prompt": ["a", 3]})", "prompt: expected"},
      {R"({"prompt": "a", "max_tokens": -1})", "max_tokens: expected an integer in [0, 1048576]"},
      {R"({"prompt": "a", "max_tokens": 1.5})", "max_tokens"},
      {R"({"prompt": "a", "stop": [""]})", "stop: expected"},
      {R"({"prompt": "a", "stop": 3})", "stop: expected"},
      {R"({"prompt": "a", "stream": "yes"})", "stream: expected true or false"},
      {R"({"prompt": ["a", "b"], "stream": true})", "streaming answers one prompt"},
      {R"({"prompt": "a", "n": 2})", "n: expected 1"},
      {R"({"prompt": "a", "echo": true})", "echo: not supported"},
      {R"({"prompt": "a", "logprobs": 5})", "logprobs: not supported"},
      {R"({"prompt": "a", "model": 3})", "model: expected a string"},
      {R"({"prompt": "a", "temperature": "hot"})", "temperature: expected a number"},
      {R"({"prompt": "a", "stream": true, "stream_options": {"include_usage": 1}})", "include_usage"},
  };
  for (const auto& [body, message] : rejected) {
    INFO(body);
    try {
      parse_api_request(Endpoint::completions, body);
      FAIL("accepted");
    } catch (const ApiError& e) {
      CHECK(e.status == 400);
      CHECK_THAT(e.what(), Catch::Contains(message));
    }
  }
  CHECK_THROWS_WITH(parse_api_request(Endpoint::chat, R"({"messages": []})"), Catch::Contains("messages: expected"));
  CHECK_THROWS_WITH(parse_api_request(Endpoint::chat, R"({"messages": [{"content": "x"}]})"),
                    Catch::Contains("messages[0]: expected an object with a \"role\""));
  CHECK_THROWS_WITH(parse_api_request(Endpoint::chat, R"({"messages": [{"role": "user", "content": 5}]})"),
                    Catch::Contains("messages[0].content"));
}

TEST_CASE("serve's replies are what the client reads back", "[remote][protocol]") {
  const Completion done{"answer", "stop", 12, 2};
  for (const Endpoint endpoint : {Endpoint::completions, Endpoint::chat}) {
    const Json reply = make_reply(endpoint, "id-1", "m", 5, {done});
    const auto read = parse_reply(endpoint, reply, false);
    CHECK(read.text == "answer");
    CHECK(read.finish_reason == "stop");
    CHECK(read.usage->prompt_tokens == 12);
    CHECK(reply.at("usage").at("total_tokens") == 14);
    const auto chunk = parse_reply(endpoint, make_chunk(endpoint, "id-1", "m", 5, "an", std::nullopt), true);
    CHECK(chunk.text == "an");
    CHECK_FALSE(chunk.finish_reason);
    const auto usage = parse_reply(endpoint, make_usage_chunk(endpoint, "id-1", "m", 5, done), true);
    CHECK(usage.usage->completion_tokens == 2);
  }
  const Json error = error_body("bad", "invalid_request_error", "prompt");
  CHECK(error.at("error").at("param") == "prompt");
}

TEST_CASE("serve's HTTP request parser: complete, incomplete, and rejected requests", "[remote][http]") {
  const RequestLimits limits{.header_bytes = 512, .body_bytes = 64};
  const std::string request = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
  const auto parsed = parse_http_request(request + "GET /next", limits);
  REQUIRE(parsed.state == HttpParse::State::complete);
  CHECK(parsed.request.body() == "hello");
  CHECK(parsed.request.target() == "/v1/completions");
  CHECK(parsed.consumed == request.size());

  const auto chunked = parse_http_request(
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", limits);
  REQUIRE(chunked.state == HttpParse::State::complete);
  CHECK(chunked.request.body() == "abcde");

  for (std::size_t cut = 0; cut < request.size(); cut += 7)
    CHECK(parse_http_request(request.substr(0, cut), limits).state == HttpParse::State::incomplete);

  auto status = [&](const std::string& bytes) {
    const auto p = parse_http_request(bytes, limits);
    return p.state == HttpParse::State::error ? p.status : 0;
  };
  CHECK(status("GARBAGE\r\n\r\n") == 400);
  CHECK(status("GET / HTTP/9.9\r\n\r\n") == 400);
  CHECK(status("POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n") == 400);
  CHECK(status("POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n") == 413);
  CHECK(status("GET / HTTP/1.1\r\nX: " + std::string(600, 'a') + "\r\n\r\n") == 431);
  CHECK(status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n") == 400);
}
