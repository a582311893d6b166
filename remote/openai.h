// The OpenAI-compatible completion protocol, both sides, as pure functions over JSON: what the remote engine
// sends and how it reads replies, and how serve reads requests and writes replies. No I/O here.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/params.h"
#include "core/text.h"

namespace ctxbench::remote {

enum class Endpoint { completions, chat };

Endpoint parse_endpoint(std::string_view name);     // "completions" or "chat"
std::string_view endpoint_path(Endpoint endpoint);  // "/v1/completions" or "/v1/chat/completions"

// A reply the client cannot use (malformed JSON, missing fields). Retrying would get the same answer.
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ---- client side ----

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
};

// Greedy decoding (temperature 0) with the sample's token budget and stop strings. `stream` asks for SSE
// with a final usage chunk (stream_options.include_usage).
Json make_request_body(Endpoint endpoint, const std::string& model, const TextSample& sample, bool stream);

// One reply, or one streamed chunk of one: the text it adds and whatever else it says.
struct ReplyPart {
  std::string text;
  std::optional<std::string> finish_reason;
  std::optional<Usage> usage;
};

// Reads a whole (non-streamed) reply or one streamed chunk. Throws ProtocolError naming the missing or
// mistyped field, and std::runtime_error with the server's message when the reply is an error object.
ReplyPart parse_reply(Endpoint endpoint, const Json& reply, bool chunk);

// ---- server side ----

// A request serve cannot accept: HTTP status and message, sent back as {"error": {...}}.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string param = "")
      : std::runtime_error(message), status(status), param(std::move(param)) {}
  int status;
  std::string param;  // the offending request field, if any
};

struct Prompt {
  std::string text;
  std::optional<std::vector<int>> tokens;  // token ids given instead of text (decoded with the served tokenizer)
};

struct ApiRequest {
  Endpoint endpoint = Endpoint::completions;
  std::string model;
  std::vector<Prompt> prompts;  // completions may batch several; chat renders its messages into one
  int max_tokens = 16;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// Checks a request body field by field. Throws ApiError(400) naming the field and what was expected.
ApiRequest parse_api_request(Endpoint endpoint, std::string_view body);

Json error_body(const std::string& message, const std::string& type, const std::string& param = "");

struct Completion {
  std::string text;
  std::string finish_reason;  // "stop" or "length"
  int prompt_tokens = 0;
  int completion_tokens = 0;
};

// A whole reply to a request with one choice per prompt.
Json make_reply(Endpoint endpoint, const std::string& id, const std::string& model, long created,
                const std::vector<Completion>& choices);
// One streamed chunk: text and/or a finish reason (chat's first chunk carries the assistant role instead).
Json make_chunk(Endpoint endpoint, const std::string& id, const std::string& model, long created,
                const std::string& text, const std::optional<std::string>& finish_reason, bool role = false);
// The final chunk of stream_options.include_usage: no choices, the token counts.
Json make_usage_chunk(Endpoint endpoint, const std::string& id, const std::string& model, long created,
                      const Completion& completion);

}  // namespace ctxbench::remote
