// core::json, the bounded JSON reader: values, escapes, numbers, nesting and size bounds, and
// garbage (every malformed input is Errc::Invalid naming an offset, never a crash). Pure.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "core/json.hpp"

using namespace rampart;
using namespace rampart::core;

TEST_CASE("json::parse: strings and their escapes") {
  struct Case {
    const char* label;
    std::string in;
    std::string want;
  };
  const Case cases[] = {
      {"plain", R"("abc")", "abc"},
      {"empty", R"("")", ""},
      {"short escapes", R"("\"\\\/\b\f\n\r\t")", "\"\\/\b\f\n\r\t"},
      {"bmp escape", R"("caf\u00e9")", "caf\xc3\xa9"},
      {"nul escape", R"("a\u0000b")", std::string("a\0b", 3)},
      {"three byte", R"("\u20AC")", "\xe2\x82\xac"},
      {"surrogate pair", R"("\ud83d\ude00")", "\xf0\x9f\x98\x80"},
      {"raw utf-8 passes", "\"\xc3\xa9t\xc3\xa9\"", "\xc3\xa9t\xc3\xa9"},
      {"8-bit passes unchecked", "\"\xff\xfe\"", "\xff\xfe"},
      {"surrounding whitespace", " \t\r\n\"x\" \n", "x"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    auto v = json::parse(c.in);
    REQUIRE_MESSAGE(v, v.error().what);
    REQUIRE(v->string() != nullptr);
    CHECK(*v->string() == c.want);
    CHECK(v->type() == json::Type::String);
    CHECK(v->array() == nullptr);
    CHECK_FALSE(v->integer());
  }
}

TEST_CASE("json::parse: numbers, literals and types") {
  auto v = json::parse(
      R"({"i": 1795313098, "neg": -42, "zero": 0, "f": 1.5, "e": 2e3, "big": 9223372036854775808,
          "huge": 1e999, "tiny": -1e-999, "t": true, "f2": false, "n": null})");
  REQUIRE_MESSAGE(v, v.error().what);
  CHECK(v->find("i")->integer() == 1795313098);
  CHECK(v->find("neg")->integer() == -42);
  CHECK(v->find("zero")->integer() == 0);
  CHECK_FALSE(v->find("f")->integer());
  CHECK(v->find("f")->number() == 1.5);
  CHECK_FALSE(v->find("e")->integer());  // an exponent makes it no integer literal
  CHECK(v->find("e")->number() == 2000.0);
  CHECK_FALSE(v->find("big")->integer());  // past int64: only as a double
  CHECK(v->find("big")->number() == 9223372036854775808.0);
  CHECK(std::isinf(*v->find("huge")->number()));
  CHECK(*v->find("tiny")->number() == 0.0);
  CHECK(v->find("t")->boolean() == true);
  CHECK(v->find("f2")->boolean() == false);
  CHECK(v->find("n")->is_null());
  CHECK(v->find("missing") == nullptr);
  CHECK(v->find("i")->find("x") == nullptr);  // find on a non-object
  CHECK_FALSE(v->find("t")->number());
}

TEST_CASE("json::parse: arrays, objects, duplicate keys") {
  auto v = json::parse(R"([[], {}, [1, [2, {"a": [3]}]], {"k": 1, "k": 2}])");
  REQUIRE_MESSAGE(v, v.error().what);
  const auto* a = v->array();
  REQUIRE(a != nullptr);
  REQUIRE(a->size() == 4);
  CHECK((*a)[0].array()->empty());
  CHECK((*a)[1].members()->empty());
  const auto& nested = *(*a)[2].array();
  CHECK(nested[0].integer() == 1);
  CHECK((*(*nested[1].array())[1].find("a")->array())[0].integer() == 3);
  // Duplicates are kept in order; find() answers the first.
  CHECK((*a)[3].members()->size() == 2);
  CHECK((*a)[3].find("k")->integer() == 1);
}

TEST_CASE("json::parse: a postqueue -j line") {
  const std::string line =
      R"({"queue_name": "hold", "queue_id": "78CE5A7AFA7", "arrival_time": 1795313098, )"
      R"("message_size": 484, "forced_expire": false, "sender": "news@shop.example", )"
      R"("recipients": [{"address": "alice@contoso.example"}, {"address": "bob@fabrikam.example", )"
      R"("delay_reason": "connect to mx[1.2.3.4]:25: Connection \"refused\""}]})";
  auto v = json::parse(line);
  REQUIRE_MESSAGE(v, v.error().what);
  CHECK(*v->find("queue_name")->string() == "hold");
  CHECK(v->find("forced_expire")->boolean() == false);
  const auto& r = *v->find("recipients")->array();
  REQUIRE(r.size() == 2);
  CHECK(*r[1].find("delay_reason")->string() ==
        "connect to mx[1.2.3.4]:25: Connection \"refused\"");
}

TEST_CASE("json::parse: malformed input is Invalid and names the offset") {
  struct Case {
    const char* label;
    std::string in;
    const char* want;  // part of the error text
  };
  const Case cases[] = {
      {"empty", "", "unexpected end of input at offset 0"},
      {"whitespace only", "   ", "unexpected end of input"},
      {"bare word", "nope", "invalid literal at offset 0"},
      {"truncated literal", "tru", "invalid literal"},
      {"trailing data", R"({} {})", "trailing data at offset 3"},
      {"unterminated string", R"("abc)", "unterminated string"},
      {"raw newline in string", "\"a\nb\"", "control character in a string at offset 2"},
      {"bad escape", R"("\x")", "bad escape at offset 2"},
      {"bad hex digit", R"("\u12G4")", "bad \\u escape at offset 3"},
      {"truncated unicode", R"("\u1)", "truncated \\u escape"},
      {"lone low surrogate", R"("\udc00")", "unpaired low surrogate"},
      {"lone high surrogate", R"("\ud800x")", "unpaired high surrogate"},
      {"high then non-low", R"("\ud800\u0041")", "unpaired high surrogate"},
      {"leading zero", "01", "trailing data at offset 1"},
      {"plus sign", "+1", "unexpected character"},
      {"bare minus", "-", "unexpected character"},
      {"dot without digits", "1.", "digit expected after '.'"},
      {"empty exponent", "1e+", "digit expected in exponent"},
      {"trailing comma array", "[1,]", "unexpected character at offset 3"},
      {"trailing comma object", R"({"a":1,})", "expected a member name at offset 7"},
      {"missing colon", R"({"a" 1})", "expected ':' at offset 5"},
      {"unquoted key", "{a:1}", "expected a member name"},
      {"unclosed array", "[1, 2", "unexpected end of input in an array"},
      {"unclosed object", R"({"a": 1)", "unexpected end of input in an object"},
      {"wrong closer", "[1}", "expected ',' or ']'"},
      {"single quotes", "'a'", "unexpected character"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    auto v = json::parse(c.in);
    REQUIRE_FALSE(v);
    CHECK(v.error().code == Errc::Invalid);
    CHECK_MESSAGE(v.error().what.find(c.want) != std::string::npos, v.error().what);
  }
}

TEST_CASE("json::parse: depth, size and value-count bounds") {
  json::Limits limits;
  limits.max_depth = 4;
  limits.max_bytes = 64;
  limits.max_values = 10;
  struct Case {
    const char* label;
    std::string in;
    bool want_ok;
    const char* want_error;
  };
  const Case cases[] = {
      {"depth at the bound", "[[[[1]]]]", true, ""},
      {"one deeper", "[[[[[1]]]]]", false, "nesting deeper than 4 at offset 4"},
      {"objects count too", R"({"a":{"b":{"c":{"d":{}}}}})", false, "nesting deeper than 4"},
      {"size at the bound", std::string(62, ' ') + "[]", true, ""},
      {"over the size", std::string(63, ' ') + "[]", false, "input of 65 bytes is over"},
      {"ten values", "[1,2,3,4,5,6,7,8,9]", true, ""},
      {"eleven values", "[1,2,3,4,5,6,7,8,9,10]", false, "more than 10 values"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    auto v = json::parse(c.in, limits);
    CHECK(static_cast<bool>(v) == c.want_ok);
    if (!v) CHECK_MESSAGE(v.error().what.find(c.want_error) != std::string::npos, v.error().what);
  }
  // The default depth bound keeps a deep nesting attack from recursing far.
  std::string deep(100000, '[');
  auto v = json::parse(deep);
  REQUIRE_FALSE(v);
  CHECK(v.error().what.find("nesting deeper than 32") != std::string::npos);
}
