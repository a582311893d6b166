// The HTTP client of the remote engine: OpenAI-compatible completion requests over Boost.Asio/Beast, with
// streaming (SSE), timeouts, retries with exponential backoff, and N requests in flight.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/text.h"
#include "remote/openai.h"

namespace ctxbench::remote {

// http://HOST[:PORT][/PREFIX]. A trailing "/v1" is dropped (OpenAI clients write base URLs both ways).
struct Url {
  std::string host;
  std::string port = "80";
  std::string prefix;  // path before "/v1/..."; empty or starting with '/'
  std::string text() const;
};

// Throws InputError (https is not supported: there is no TLS in this client).
Url parse_base_url(std::string_view url);

struct ClientOptions {
  Url url;
  Endpoint endpoint = Endpoint::completions;
  std::string model;
  std::string api_key;  // sent as "Authorization: Bearer KEY" when not empty
  int concurrency = 1;
  double timeout_seconds = 120;  // each of connect, send, and every wait for more of the reply
  int retries = 2;               // further attempts after a retryable failure
  double backoff_seconds = 1;    // before retry k (1-based): backoff_seconds * 2^(k-1)
  bool stream = true;
};

struct Reply {
  std::string text;
  double first_token_seconds = 0;  // from the start of the successful attempt to its first text
  double last_text_seconds = 0;    // to its last text: the tokens after the first came in between
  double total_seconds = 0;        // end to end, the same attempt
  int text_chunks = 0;             // streamed events that carried text
  std::optional<Usage> usage;      // the server's token counts, when it reports them
  std::string finish_reason;
};

struct Outcome {
  std::optional<Reply> reply;  // empty if the request failed for good
  std::string error;           // why, naming the URL, the stage and the attempts
  int attempts = 0;
};

// One request per sample, keeping up to options.concurrency in flight; outcomes are in sample order. After a
// request fails for good no new one starts; the samples never sent say so in their error.
std::vector<Outcome> complete_all(const ClientOptions& options, const std::vector<TextSample>& samples);

// Receives a reply's text piece by piece as it arrives: a streamed event's text, or a whole reply's in one piece.
using TextSink = std::function<void(std::string_view)>;

// One request whose text goes to on_text as each event arrives (the Reply holds it all as well). Failed attempts
// are retried as complete_all's are only while no text has gone to on_text: a retry after that would hand the
// same text on again. What on_text throws ends the request and propagates.
Outcome complete_streaming(const ClientOptions& options, const TextSample& sample, const TextSink& on_text);

}  // namespace ctxbench::remote
