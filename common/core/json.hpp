// A small, bounded JSON reader (RFC 8259) for what other programs print to us, first of all
// `postqueue -j` (one object per line). Pure; no I/O. Bounded in input size, nesting depth and
// value count, so hostile input costs at most those; never throws on bad input (Errc::Invalid).
// Strings are byte strings: \u escapes become UTF-8, other bytes >= 0x20 pass through unchecked
// (Postfix passes 8-bit envelope data through as it came).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace rampart::core::json {

enum class Type : std::uint8_t { Null, Bool, Number, String, Array, Object };

struct Limits {
  std::size_t max_bytes = 1 << 20;  // whole input
  std::size_t max_depth = 32;       // nested arrays/objects; the top level is depth 1
  std::size_t max_values = 100000;  // every value, members and elements included
};

struct Member;

// One parsed value. Accessors return nullptr / nullopt when the value is of another type.
class Value {
 public:
  Value() = default;
  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }

  std::optional<bool> boolean() const;
  // Any number, as the nearest double.
  std::optional<double> number() const;
  // A number written without fraction or exponent that fits std::int64_t, exactly.
  std::optional<std::int64_t> integer() const;
  const std::string* string() const;
  const std::vector<Value>* array() const;
  const std::vector<Member>* members() const;
  // The first member named `key` of an object (duplicates are kept, in order), or nullptr.
  const Value* find(std::string_view key) const;

 private:
  friend class Parser;
  Type type_ = Type::Null;
  bool bool_ = false;
  bool integral_ = false;  // int_ holds the exact value
  double number_ = 0;
  std::int64_t int_ = 0;
  std::string string_;
  std::vector<Value> array_;
  std::vector<Member> members_;
};

struct Member {
  std::string key;
  Value value;
};

// Parses exactly one JSON text (surrounding whitespace allowed). Errc::Invalid naming the
// offset: "json: expected ':' at offset 12", "json: nesting deeper than 32 at offset 40".
[[nodiscard]] Result<Value> parse(std::string_view text, const Limits& limits = {});

}  // namespace rampart::core::json
