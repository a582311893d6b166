#include <catch2/catch.hpp>

#include "core/json_fields.h"
#include "core/param_fields.h"

using namespace ctxbench;

namespace {

enum class Pooling { max, average };

struct Example {
  int window = 32;
  double ratio = 0.25;
  double whole = 4.0;
  bool enabled = true;
  std::string name = "a";
  std::vector<int> sizes = {1, 2};
  Pooling pooling = Pooling::average;

  static ParamFields<Example> fields() {
    return ParamFields<Example>()
        .field(&Example::window, "window", "keys kept", {.min = 1})
        .field(&Example::ratio, "ratio", "a share", {.min = 0, .max = 1})
        .field(&Example::whole, "whole", "integral default kept as an integer", {.integer_default = true})
        .field(&Example::enabled, "enabled", "a switch")
        .field(&Example::name, "name", "one of two", {.choices = {"a", "b"}})
        .field(&Example::sizes, "sizes", "a list", {.min = 1})
        .choice(&Example::pooling, "pooling", "how", {{"max", Pooling::max}, {"avg", Pooling::average}})
        .check([](const Example& e) {
          if (e.window % 2) throw InputError("window: expected an even number");
        });
  }
};

}  // namespace

TEST_CASE("one field declaration gives the schema entry, its default and the parsing", "[core][params]") {
  const auto fields = Example::fields();
  const ParamSchema& schema = fields.schema();
  REQUIRE(schema.size() == 7);
  CHECK(schema[0].name == "window");
  CHECK(schema[0].type == ParamType::integer);
  CHECK(schema[0].default_value == Json(32));
  CHECK(schema[0].min == 1.0);
  CHECK(schema[1].type == ParamType::number);
  CHECK(schema[1].default_value.is_number_float());
  CHECK(schema[1].max == 1.0);
  // Cell keys hash the dumped defaults: 4 and 4.0 differ, so the JSON type of a default is part of its declaration.
  CHECK(schema[2].default_value.dump() == "4");
  CHECK(schema[3].type == ParamType::boolean);
  CHECK(schema[4].choices == std::vector<std::string>{"a", "b"});
  CHECK(schema[5].type == ParamType::integer_list);
  CHECK(schema[6].default_value == Json("avg"));
  CHECK(schema[6].choices == std::vector<std::string>{"max", "avg"});

  const Json resolved = resolve_params(
      schema, Json{{"window", 8}, {"name", "b"}, {"sizes", {3}}, {"pooling", "max"}, {"enabled", false}}, "t");
  const Example parsed = fields.parse(resolved);
  CHECK(parsed.window == 8);
  CHECK(parsed.ratio == 0.25);
  CHECK(parsed.whole == 4.0);
  CHECK_FALSE(parsed.enabled);
  CHECK(parsed.name == "b");
  CHECK(parsed.sizes == std::vector<int>{3});
  CHECK(parsed.pooling == Pooling::max);

  const Example defaults = fields.parse(resolve_params(schema, Json(), "t"));
  CHECK(defaults.window == 32);
  CHECK(defaults.pooling == Pooling::average);
}

TEST_CASE("declared parameters are checked: type, range, choices, unknown names and rules between fields",
          "[core][params]") {
  const auto fields = Example::fields();
  const ParamSchema& schema = fields.schema();
  CHECK_THROWS_WITH(resolve_params(schema, Json{{"window", 0}}, "s.json: $.p"),
                    Catch::Contains("s.json: $.p.window") && Catch::Contains(">= 1"));
  CHECK_THROWS_WITH(resolve_params(schema, Json{{"ratio", 2}}, "t"), Catch::Contains("t.ratio"));
  CHECK_THROWS_WITH(resolve_params(schema, Json{{"name", "c"}}, "t"), Catch::Contains("one of a, b"));
  CHECK_THROWS_WITH(resolve_params(schema, Json{{"pooling", "sum"}}, "t"), Catch::Contains("one of max, avg"));
  CHECK_THROWS_WITH(resolve_params(schema, Json{{"windw", 2}}, "t"), Catch::Contains("t.windw: unknown parameter"));
  CHECK_THROWS_WITH(fields.parse(resolve_params(schema, Json{{"window", 3}}, "t")),
                    Catch::Contains("window: expected an even number"));
}

TEST_CASE("JSON fields: HF null is absent, and every error names the field and what was expected", "[core][json]") {
  const Json object = Json::parse(R"({"a": 2.0, "b": null, "c": "x", "d": [1, 2], "e": -1, "f": true, "g": 5})");
  const JsonFields f(object, "rope_scaling");
  CHECK(f.integer_at_least("a", 1) == 2);
  CHECK_FALSE(f.number("b").has_value());
  CHECK_FALSE(f.number("missing").has_value());
  CHECK(f.string("c") == "x");
  CHECK(f.boolean("f") == true);
  CHECK(f.ids("d") == std::vector<int>{1, 2});
  CHECK(f.ids("g") == std::vector<int>{5});
  CHECK(f.positive_numbers("d", 2, "pairs") == std::vector<double>{1, 2});
  CHECK_THROWS_WITH(f.positive_integer("e"), "rope_scaling.e: expected a positive integer, got -1");
  CHECK_THROWS_WITH(f.string("a"), "rope_scaling.a: expected a string, got 2.0");
  CHECK_THROWS_WITH(f.positive_numbers("d", 3, "pairs"),
                    "rope_scaling.d: expected an array of 3 positive numbers (pairs), got 2 entries");
  CHECK_THROWS_WITH(f.required_number_at_least("b", 1), "rope_scaling.b: expected a number >= 1 (missing)");
  CHECK_THROWS_AS(f.number("c"), InputError);
}

TEST_CASE("a Required parameter has no default: a suite must give it", "[core][params]") {
  struct Server {
    Required<std::string> url;
    static ParamFields<Server> fields() { return ParamFields<Server>().field(&Server::url, "url", "where"); }
  };
  const auto fields = Server::fields();
  CHECK(fields.schema().at(0).default_value.is_null());
  CHECK(fields.schema().at(0).type == ParamType::string);
  CHECK_THROWS_WITH(resolve_params(fields.schema(), Json::object(), "s.json: $.engines[0].params"),
                    "s.json: $.engines[0].params.url: required a string is missing");
  CHECK(fields.parse(resolve_params(fields.schema(), Json{{"url", "http://x"}}, "t")).url.value == "http://x");
}

namespace {

struct Later {
  int kept = 1;
  std::string added = "none";

  static ParamFields<Later> fields() {
    return ParamFields<Later>()
        .field(&Later::kept, "kept", "declared from the start")
        .field(&Later::added, "added", "declared after suites were recorded", {.absent_by_default = true});
  }
};

}  // namespace

TEST_CASE("a parameter absent by default stays out of the resolved parameters until given", "[core][params]") {
  const auto fields = Later::fields();
  const Json defaults = resolve_params(fields.schema(), Json::object(), "t");
  CHECK(defaults == Json{{"kept", 1}});  // what a cell key hashes: the same as before "added" existed
  CHECK(fields.parse(defaults).added == "none");
  const Json given = resolve_params(fields.schema(), Json{{"added", "x"}}, "t");
  CHECK(given == Json{{"kept", 1}, {"added", "x"}});
  CHECK(fields.parse(given).added == "x");
  CHECK_THROWS_WITH(resolve_params(fields.schema(), Json{{"added", 3}}, "t"), Catch::Contains("t.added: expected"));
}
