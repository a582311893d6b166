#include "remote/openai.h"

#include <fmt/format.h>

namespace ctxbench::remote {

Endpoint parse_endpoint(std::string_view name) {
  if (name == "completions") return Endpoint::completions;
  if (name == "chat") return Endpoint::chat;
  throw InputError(fmt::format("endpoint: expected \"completions\" or \"chat\", got \"{}\"", name));
}

std::string_view endpoint_path(Endpoint endpoint) {
  return endpoint == Endpoint::chat ? "/v1/chat/completions" : "/v1/completions";
}

// ---- client side ----

Json make_request_body(Endpoint endpoint, const std::string& model, const TextSample& sample, bool stream) {
  Json body = {{"model", model}, {"max_tokens", sample.max_new_tokens}, {"temperature", 0}, {"stream", stream}};
  if (endpoint == Endpoint::chat) {
    body["messages"] = Json::array({{{"role", "user"}, {"content", sample.prompt}}});
  } else {
    body["prompt"] = sample.prompt;
  }
  if (!sample.stop.empty()) body["stop"] = sample.stop;
  if (stream) body["stream_options"] = {{"include_usage", true}};
  return body;
}

namespace {

const Json& member(const Json& object, const char* name, const std::string& path) {
  if (!object.is_object() || !object.contains(name))
    throw ProtocolError(fmt::format("reply {}: missing \"{}\"", path, name));
  return object.at(name);
}

std::optional<Usage> read_usage(const Json& reply) {
  if (!reply.contains("usage") || reply.at("usage").is_null()) return std::nullopt;
  const Json& usage = reply.at("usage");
  auto count = [&](const char* name) {
    const Json& value = member(usage, name, "$.usage");
    if (!value.is_number_integer() || value.get<long long>() < 0)
      throw ProtocolError(fmt::format("reply $.usage.{}: expected a count, got {}", name, value.dump()));
    return value.get<int>();
  };
  return Usage{count("prompt_tokens"), count("completion_tokens")};
}

// A missing or null text is an empty one (chunks that carry only a role or a finish reason).
std::string optional_text(const Json& object, const char* name, const std::string& path) {
  if (!object.contains(name) || object.at(name).is_null()) return "";
  if (!object.at(name).is_string())
    throw ProtocolError(fmt::format("reply {}.{}: expected a string, got {}", path, name, object.at(name).dump()));
  return object.at(name).get<std::string>();
}

}  // namespace

ReplyPart parse_reply(Endpoint endpoint, const Json& reply, bool chunk) {
  if (!reply.is_object()) throw ProtocolError("reply: expected a JSON object, got " + reply.dump().substr(0, 200));
  if (reply.contains("error") && !reply.at("error").is_null()) {
    const Json& error = reply.at("error");
    const bool has_message = error.is_object() && error.contains("message") && error.at("message").is_string();
    throw std::runtime_error("server error: " + (has_message ? error.at("message").get<std::string>() : error.dump()));
  }
  ReplyPart part;
  part.usage = read_usage(reply);
  const Json& choices = member(reply, "choices", "$");
  if (!choices.is_array()) throw ProtocolError("reply $.choices: expected an array, got " + choices.dump());
  if (choices.empty()) {
    if (chunk) return part;  // the usage chunk at the end of a stream
    throw ProtocolError("reply $.choices: empty");
  }
  const Json& choice = choices.at(0);
  if (!choice.is_object()) throw ProtocolError("reply $.choices[0]: expected an object, got " + choice.dump());
  if (endpoint == Endpoint::completions) {
    part.text = optional_text(choice, "text", "$.choices[0]");
  } else {
    const char* holder = chunk ? "delta" : "message";
    const Json& message = member(choice, holder, "$.choices[0]");
    part.text = optional_text(message, "content", fmt::format("$.choices[0].{}", holder));
  }
  if (choice.contains("finish_reason") && !choice.at("finish_reason").is_null()) {
    if (!choice.at("finish_reason").is_string())
      throw ProtocolError("reply $.choices[0].finish_reason: expected a string, got " +
                          choice.at("finish_reason").dump());
    part.finish_reason = choice.at("finish_reason").get<std::string>();
  }
  return part;
}

// ---- server side ----

namespace {

inline constexpr int kMaxTokensLimit = 1 << 20;
inline constexpr std::size_t kMaxStopStrings = 16;

std::string shown(const Json& value) {
  std::string text = value.dump();
  return text.size() > 80 ? text.substr(0, 77) + "..." : text;
}

[[noreturn]] void reject(const std::string& field, const std::string& expected, const Json& got) {
  throw ApiError(400, fmt::format("{}: expected {}, got {}", field, expected, shown(got)), field);
}

std::optional<std::vector<int>> token_ids(const Json& value) {
  if (!value.is_array() || value.empty()) return std::nullopt;
  std::vector<int> out;
  for (const Json& id : value) {
    if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() > INT32_MAX) return std::nullopt;
    out.push_back(id.get<int>());
  }
  return out;
}

std::vector<Prompt> read_prompts(const Json& prompt) {
  const std::string expected = "a string, a list of strings, or token ids (a list of integers or of lists)";
  if (prompt.is_string()) return {{prompt.get<std::string>(), std::nullopt}};
  if (!prompt.is_array() || prompt.empty()) reject("prompt", expected, prompt);
  if (auto ids = token_ids(prompt)) return {{"", std::move(ids)}};
  std::vector<Prompt> out;
  for (const Json& item : prompt) {
    if (item.is_string()) {
      out.push_back({item.get<std::string>(), std::nullopt});
    } else if (auto ids = token_ids(item)) {
      out.push_back({"", std::move(ids)});
    } else {
      reject("prompt", expected, prompt);
    }
  }
  return out;
}

std::string message_text(const Json& content, std::size_t i) {
  const std::string field = fmt::format("messages[{}].content", i);
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) reject(field, "a string or a list of text parts", content);
  std::string out;
  for (const Json& part : content) {
    if (!part.is_object() || !part.contains("type") || part.at("type") != "text" || !part.contains("text") ||
        !part.at("text").is_string())
      reject(field, "text parts ({\"type\": \"text\", \"text\": ...})", part);
    out += part.at("text").get<std::string>();
  }
  return out;
}

// No chat template: the messages' contents in order, one per line.
Prompt render_messages(const Json& messages) {
  if (!messages.is_array() || messages.empty()) reject("messages", "a non-empty list of messages", messages);
  std::string text;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const Json& message = messages[i];
    if (!message.is_object() || !message.contains("role") || !message.at("role").is_string())
      reject(fmt::format("messages[{}]", i), "an object with a \"role\" string", message);
    if (!message.contains("content")) reject(fmt::format("messages[{}].content", i), "a string", Json());
    if (i) text += '\n';
    text += message_text(message.at("content"), i);
  }
  return {text, std::nullopt};
}

std::vector<std::string> read_stop(const Json& stop) {
  if (stop.is_null()) return {};
  if (stop.is_string()) {
    if (stop.get<std::string>().empty()) reject("stop", "a non-empty string", stop);
    return {stop.get<std::string>()};
  }
  const std::string expected = fmt::format("a string or a list of at most {} non-empty strings", kMaxStopStrings);
  if (!stop.is_array() || stop.size() > kMaxStopStrings) reject("stop", expected, stop);
  std::vector<std::string> out;
  for (const Json& s : stop) {
    if (!s.is_string() || s.get<std::string>().empty()) reject("stop", expected, stop);
    out.push_back(s.get<std::string>());
  }
  return out;
}

int read_max_tokens(const Json& body, Endpoint endpoint) {
  const char* name =
      endpoint == Endpoint::chat && !body.contains("max_tokens") && body.contains("max_completion_tokens")
          ? "max_completion_tokens"
          : "max_tokens";
  if (!body.contains(name) || body.at(name).is_null()) return endpoint == Endpoint::chat ? 256 : 16;
  const Json& value = body.at(name);
  if (!value.is_number_integer() || value.get<long long>() < 0 || value.get<long long>() > kMaxTokensLimit)
    reject(name, fmt::format("an integer in [0, {}]", kMaxTokensLimit), value);
  return value.get<int>();
}

void reject_unsupported(const Json& body) {
  if (body.contains("n") && body.at("n") != 1) reject("n", "1 (one choice per prompt)", body.at("n"));
  for (const char* name : {"echo", "logprobs"}) {
    if (!body.contains(name)) continue;
    const Json& value = body.at(name);
    if (value.is_null() || value == false || value == 0) continue;
    throw ApiError(400, fmt::format("{}: not supported by ctxbench serve", name), name);
  }
  for (const char* name : {"temperature", "top_p"}) {
    if (body.contains(name) && !body.at(name).is_null() && !body.at(name).is_number())
      reject(name, "a number", body.at(name));
  }
}

}  // namespace

ApiRequest parse_api_request(Endpoint endpoint, std::string_view body_text) {
  Json body;
  try {
    body = Json::parse(body_text);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number beyond a double
    throw ApiError(400, fmt::format("request body is not valid JSON: {}", e.what()));
  }
  if (!body.is_object()) reject("request body", "a JSON object", body);
  reject_unsupported(body);
  ApiRequest request;
  request.endpoint = endpoint;
  if (body.contains("model") && !body.at("model").is_null()) {
    if (!body.at("model").is_string()) reject("model", "a string", body.at("model"));
    request.model = body.at("model").get<std::string>();
  }
  if (endpoint == Endpoint::chat) {
    if (!body.contains("messages")) reject("messages", "a non-empty list of messages", Json());
    request.prompts = {render_messages(body.at("messages"))};
  } else {
    if (!body.contains("prompt")) reject("prompt", "a string, a list of strings, or token ids", Json());
    request.prompts = read_prompts(body.at("prompt"));
  }
  request.max_tokens = read_max_tokens(body, endpoint);
  request.stop = read_stop(body.value("stop", Json()));
  const Json stream = body.value("stream", Json(false));
  if (!stream.is_boolean() && !stream.is_null()) reject("stream", "true or false", stream);
  request.stream = stream == true;
  if (request.stream && request.prompts.size() > 1)
    throw ApiError(400, "prompt: streaming answers one prompt per request", "prompt");
  if (body.contains("stream_options") && !body.at("stream_options").is_null()) {
    const Json& options = body.at("stream_options");
    if (!options.is_object()) reject("stream_options", "an object", options);
    const Json include = options.value("include_usage", Json(false));
    if (!include.is_boolean()) reject("stream_options.include_usage", "true or false", include);
    request.include_usage = include.get<bool>();
  }
  return request;
}

Json error_body(const std::string& message, const std::string& type, const std::string& param) {
  return {{"error",
           {{"message", message}, {"type", type}, {"param", param.empty() ? Json() : Json(param)}, {"code", Json()}}}};
}

namespace {

Json envelope(Endpoint endpoint, const std::string& id, const std::string& model, long created, bool chunk) {
  const char* object =
      endpoint == Endpoint::chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  return {{"id", id}, {"object", object}, {"created", created}, {"model", model}};
}

Json usage_json(int prompt_tokens, int completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

}  // namespace

Json make_reply(Endpoint endpoint, const std::string& id, const std::string& model, long created,
                const std::vector<Completion>& choices) {
  Json reply = envelope(endpoint, id, model, created, false);
  Json list = Json::array();
  int prompt_tokens = 0, completion_tokens = 0;
  for (std::size_t i = 0; i < choices.size(); ++i) {
    const Completion& c = choices[i];
    Json choice = {{"index", i}, {"finish_reason", c.finish_reason}};
    if (endpoint == Endpoint::chat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    } else {
      choice["text"] = c.text;
      choice["logprobs"] = nullptr;
    }
    list.push_back(std::move(choice));
    prompt_tokens += c.prompt_tokens;
    completion_tokens += c.completion_tokens;
  }
  reply["choices"] = std::move(list);
  reply["usage"] = usage_json(prompt_tokens, completion_tokens);
  return reply;
}

Json make_chunk(Endpoint endpoint, const std::string& id, const std::string& model, long created,
                const std::string& text, const std::optional<std::string>& finish_reason, bool role) {
  Json chunk = envelope(endpoint, id, model, created, true);
  Json choice = {{"index", 0}, {"finish_reason", finish_reason ? Json(*finish_reason) : Json()}};
  if (endpoint == Endpoint::chat) {
    choice["delta"] = role ? Json{{"role", "assistant"}} : Json::object();
    if (!text.empty()) choice["delta"]["content"] = text;
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  chunk["choices"] = Json::array({std::move(choice)});
  return chunk;
}

Json make_usage_chunk(Endpoint endpoint, const std::string& id, const std::string& model, long created,
                      const Completion& completion) {
  Json chunk = envelope(endpoint, id, model, created, true);
  chunk["choices"] = Json::array();
  chunk["usage"] = usage_json(completion.prompt_tokens, completion.completion_tokens);
  return chunk;
}

}  // namespace ctxbench::remote
