// qa.py: the documents of a SQuAD or HotpotQA question among as many other documents as the context holds;
// the answer is the question's.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <numeric>
#include <set>

#include "core/params.h"
#include "tasks/text_tasks/common.h"
#include "tasks/text_tasks/ruler/scripts.h"

namespace ctxbench::tasks::text::ruler {
namespace {

struct QaData {
  struct Question {
    std::string query;
    std::vector<std::string> outputs;
    std::vector<std::size_t> docs, more_docs;
  };
  std::vector<Question> questions;
  std::vector<std::string> docs;
};

std::string json_where(const std::string& file, const std::string& path) { return fmt::format("{}: {}", file, path); }

const Json& require(const Json& j, const char* key, const std::string& file, const std::string& path) {
  if (!j.is_object() || !j.contains(key))
    throw InputError(json_where(file, path) + fmt::format(": missing \"{}\"", key));
  return j.at(key);
}

std::string require_string(const Json& j, const char* key, const std::string& file, const std::string& path) {
  const Json& v = require(j, key, file, path);
  if (!v.is_string()) throw InputError(json_where(file, path + "." + key) + ": expected a string");
  return v.get<std::string>();
}

const Json& require_array(const Json& j, const char* key, const std::string& file, const std::string& path) {
  const Json& v = require(j, key, file, path);
  if (!v.is_array()) throw InputError(json_where(file, path + "." + key) + ": expected a list");
  return v;
}

std::map<std::string, std::size_t> index_docs(std::vector<std::string>& docs) {
  std::sort(docs.begin(), docs.end());
  docs.erase(std::unique(docs.begin(), docs.end()), docs.end());
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < docs.size(); ++i) index[docs[i]] = i;
  return index;
}

// read_squad: SQuAD 1.1/2.0 ({"data": [{"paragraphs": [{"context", "qas": [...]}]}]}), answerable questions.
QaData read_squad(const Json& root, const std::string& file) {
  QaData d;
  const Json& data = require_array(root, "data", file, "$");
  for (std::size_t a = 0; a < data.size(); ++a) {
    const Json& paragraphs = require_array(data[a], "paragraphs", file, fmt::format("$.data[{}]", a));
    for (std::size_t p = 0; p < paragraphs.size(); ++p)
      d.docs.push_back(require_string(paragraphs[p], "context", file, fmt::format("$.data[{}].paragraphs[{}]", a, p)));
  }
  const auto index = index_docs(d.docs);
  for (std::size_t a = 0; a < data.size(); ++a) {
    const Json& paragraphs = data[a].at("paragraphs");
    std::vector<std::size_t> article;
    for (const auto& p : paragraphs) article.push_back(index.at(p.at("context").get<std::string>()));
    for (std::size_t p = 0; p < paragraphs.size(); ++p) {
      const std::string path = fmt::format("$.data[{}].paragraphs[{}]", a, p);
      const Json& qas = require_array(paragraphs[p], "qas", file, path);
      const std::size_t own = index.at(paragraphs[p].at("context").get<std::string>());
      for (std::size_t q = 0; q < qas.size(); ++q) {
        const std::string qpath = fmt::format("{}.qas[{}]", path, q);
        if (qas[q].value("is_impossible", false)) continue;
        QaData::Question question{require_string(qas[q], "question", file, qpath), {}, {own}, {}};
        const Json& answers = require_array(qas[q], "answers", file, qpath);
        for (std::size_t i = 0; i < answers.size(); ++i)
          question.outputs.push_back(require_string(answers[i], "text", file, fmt::format("{}.answers[{}]", qpath, i)));
        if (question.outputs.empty()) throw InputError(json_where(file, qpath + ".answers") + ": empty answer list");
        for (const std::size_t doc : article) {
          if (doc != own) question.more_docs.push_back(doc);
        }
        d.questions.push_back(std::move(question));
      }
    }
  }
  return d;
}

// read_hotpotqa: [{"question", "answer", "context": [[title, [sentences...]], ...]}]; a document is
// "title\n" + the sentences joined.
QaData read_hotpotqa(const Json& root, const std::string& file) {
  if (!root.is_array()) throw InputError(file + ": expected a JSON list of HotpotQA records");
  QaData d;
  std::vector<std::vector<std::string>> per_question;
  for (std::size_t i = 0; i < root.size(); ++i) {
    const std::string path = fmt::format("$[{}]", i);
    const Json& context = require_array(root[i], "context", file, path);
    per_question.emplace_back();
    for (std::size_t c = 0; c < context.size(); ++c) {
      const Json& entry = context[c];
      if (!entry.is_array() || entry.size() != 2 || !entry[0].is_string() || !entry[1].is_array())
        throw InputError(json_where(file, fmt::format("{}.context[{}]", path, c)) + ": expected [title, [sentences]]");
      std::string doc = entry[0].get<std::string>() + "\n";
      for (const auto& s : entry[1]) {
        if (!s.is_string())
          throw InputError(json_where(file, fmt::format("{}.context[{}]", path, c)) + ": sentences must be strings");
        doc += s.get<std::string>();
      }
      per_question.back().push_back(doc);
      d.docs.push_back(doc);
    }
  }
  const auto index = index_docs(d.docs);
  for (std::size_t i = 0; i < root.size(); ++i) {
    const std::string path = fmt::format("$[{}]", i);
    QaData::Question q{
        require_string(root[i], "question", file, path), {require_string(root[i], "answer", file, path)}, {}, {}};
    for (const auto& doc : per_question[i]) q.docs.push_back(index.at(doc));
    d.questions.push_back(std::move(q));
  }
  return d;
}

const QaData& qa_data(const std::string& file, QaDataset dataset) {
  static std::mutex mutex;
  static std::map<std::pair<std::string, QaDataset>, QaData> cache;
  std::lock_guard lock(mutex);
  const auto key = std::make_pair(from_source_tree(file).string(), dataset);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  Json root;
  try {
    root = Json::parse(read_text_file(key.first));
  } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number beyond a double
    throw InputError(fmt::format("{}: not JSON ({})", key.first, e.what()));
  }
  QaData data = dataset == QaDataset::squad ? read_squad(root, key.first) : read_hotpotqa(root, key.first);
  if (data.questions.empty()) throw InputError(key.first + ": no answerable question");
  return cache.emplace(key, std::move(data)).first->second;
}

Generated qa_sample(const QaData& data, std::size_t question, int num_docs, Rng& rng) {
  const auto& q = data.questions[question % data.questions.size()];
  std::vector<std::size_t> chosen;
  const auto n = static_cast<std::size_t>(num_docs);
  if (n < data.docs.size()) {
    if (n < q.docs.size()) {
      for (const std::size_t i : sample_indices(rng, q.docs.size(), n)) chosen.push_back(q.docs[i]);
    } else if (n - q.docs.size() < q.more_docs.size()) {
      chosen = q.docs;
      for (const std::size_t i : sample_indices(rng, q.more_docs.size(), n - q.docs.size()))
        chosen.push_back(q.more_docs[i]);
    } else {
      chosen = q.docs;
      chosen.insert(chosen.end(), q.more_docs.begin(), q.more_docs.end());
      const std::set<std::size_t> taken(chosen.begin(), chosen.end());
      std::vector<std::size_t> others;
      for (std::size_t i = 0; i < data.docs.size(); ++i) {
        if (!taken.contains(i)) others.push_back(i);
      }
      const std::size_t extra = n > chosen.size() ? n - chosen.size() : 0;
      for (const std::size_t i : sample_indices(rng, others.size(), std::min(extra, others.size())))
        chosen.push_back(others[i]);
    }
  } else {
    chosen.resize(data.docs.size());
    std::iota(chosen.begin(), chosen.end(), std::size_t{0});
  }
  shuffle(rng, chosen);
  std::string context;
  for (std::size_t i = 0; i < chosen.size(); ++i)
    context += fmt::format("{}Document {}:\n{}", i ? "\n\n" : "", i + 1, data.docs[chosen[i]]);
  return {format_template(prompt_template(Script::qa), {{"context", context}, {"query", q.query}}), q.outputs};
}

}  // namespace

std::vector<Generated> qa_samples(const Options& o, QaDataset dataset, const Tokenizer& tokenizer) {
  if (o.qa_file.empty()) {
    throw InputError(
        fmt::format("ruler {}: set the qa_file parameter to a local {} json file (RULER's qa tasks need "
                    "it; none is bundled)",
                    o.task, dataset == QaDataset::squad ? "SQuAD (v2.0 dev)" : "HotpotQA (distractor dev)"));
  }
  const QaData& data = qa_data(o.qa_file, dataset);
  const int reserve = script_template(Script::qa).tokens_to_generate;
  // Question i of the file for sample i (qa.py uses index + pre_samples); the document count is searched with
  // the first question and shrunk per sample, capped at the number of documents.
  std::vector<Generated> out;
  auto fits = [&](std::size_t question, int docs) {
    Rng rng(sample_seed(o.seed, question, 0x7161));
    return token_count(tokenizer, qa_sample(data, question, docs, rng).text) <=
           prompt_budget(o.max_seq_length, reserve);
  };
  const int all_docs = static_cast<int>(data.docs.size());
  const int size = largest_fitting(1, all_docs, [&](int docs) { return fits(0, docs); });
  for (int i = 0; i < o.samples; ++i) {
    const auto question = static_cast<std::size_t>(i);
    const int own = size >= 1 && fits(question, size)
                        ? size
                        : largest_fitting(1, std::max(1, size) - 1, [&](int docs) { return fits(question, docs); });
    if (own < 1)
      throw InputError(fmt::format("ruler {}: context length {} is too short for question {} and one document", o.task,
                                   o.max_seq_length, i));
    Rng rng(sample_seed(o.seed, question, 0x7161));
    out.push_back(qa_sample(data, question, own, rng));
  }
  return out;
}

}  // namespace ctxbench::tasks::text::ruler
