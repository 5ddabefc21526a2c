// The bounded JSON reader (see json.hpp). Pure; no I/O. Recursive descent, depth-bounded.
#include "core/json.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <system_error>

#include <fmt/format.h>

namespace rampart::core::json {

std::optional<bool> Value::boolean() const {
  if (type_ != Type::Bool) return std::nullopt;
  return bool_;
}

std::optional<double> Value::number() const {
  if (type_ != Type::Number) return std::nullopt;
  return number_;
}

std::optional<std::int64_t> Value::integer() const {
  if (type_ != Type::Number || !integral_) return std::nullopt;
  return int_;
}

const std::string* Value::string() const { return type_ == Type::String ? &string_ : nullptr; }

const std::vector<Value>* Value::array() const { return type_ == Type::Array ? &array_ : nullptr; }

const std::vector<Member>* Value::members() const {
  return type_ == Type::Object ? &members_ : nullptr;
}

const Value* Value::find(std::string_view key) const {
  if (type_ != Type::Object) return nullptr;
  for (const auto& m : members_) {
    if (m.key == key) return &m.value;
  }
  return nullptr;
}

class Parser {
 public:
  Parser(std::string_view text, const Limits& limits) : s_(text), limits_(limits) {}

  Result<Value> run() {
    if (s_.size() > limits_.max_bytes) {
      return fail(Errc::Invalid, fmt::format("json: input of {} bytes is over the limit of {}",
                                             s_.size(), limits_.max_bytes));
    }
    Value v;
    if (!value(v, 1)) return fail(Errc::Invalid, std::move(error_));
    skip_ws();
    if (pos_ != s_.size()) {
      return fail(Errc::Invalid, fmt::format("json: trailing data at offset {}", pos_));
    }
    return v;
  }

 private:
  bool err(std::string_view what) {
    if (error_.empty()) error_ = fmt::format("json: {} at offset {}", what, pos_);
    return false;
  }

  void skip_ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return err("invalid literal");
    pos_ += word.size();
    return true;
  }

  bool value(Value& out, std::size_t depth) {
    if (++values_ > limits_.max_values) {
      return err(fmt::format("more than {} values", limits_.max_values));
    }
    skip_ws();
    if (pos_ >= s_.size()) return err("unexpected end of input");
    switch (s_[pos_]) {
      case 'n': out.type_ = Type::Null; return literal("null");
      case 't':
        out.type_ = Type::Bool;
        out.bool_ = true;
        return literal("true");
      case 'f':
        out.type_ = Type::Bool;
        out.bool_ = false;
        return literal("false");
      case '"': out.type_ = Type::String; return string(out.string_);
      case '[': return array(out, depth);
      case '{': return object(out, depth);
      default: return number(out);
    }
  }

  bool enter(std::size_t depth) {
    if (depth > limits_.max_depth) {
      return err(fmt::format("nesting deeper than {}", limits_.max_depth));
    }
    ++pos_;  // the opening bracket
    return true;
  }

  bool array(Value& out, std::size_t depth) {
    out.type_ = Type::Array;
    if (!enter(depth)) return false;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      out.array_.emplace_back();
      if (!value(out.array_.back(), depth + 1)) return false;
      skip_ws();
      if (pos_ >= s_.size()) return err("unexpected end of input in an array");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return err("expected ',' or ']'");
    }
  }

  bool object(Value& out, std::size_t depth) {
    out.type_ = Type::Object;
    if (!enter(depth)) return false;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"') return err("expected a member name");
      out.members_.emplace_back();
      auto& m = out.members_.back();
      if (!string(m.key)) return false;
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ':') return err("expected ':'");
      ++pos_;
      if (!value(m.value, depth + 1)) return false;
      skip_ws();
      if (pos_ >= s_.size()) return err("unexpected end of input in an object");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '}') {
        ++pos_;
        return true;
      }
      return err("expected ',' or '}'");
    }
  }

  static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // Four hex digits after "\u" at pos_ (pos_ on the first digit).
  bool hex4(std::uint32_t& out) {
    if (s_.size() - pos_ < 4) return err("truncated \\u escape");
    out = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      const int d = hex_digit(s_[pos_ + i]);
      if (d < 0) return err("bad \\u escape");
      out = out * 16 + static_cast<std::uint32_t>(d);
    }
    pos_ += 4;
    return true;
  }

  static void put_utf8(std::string& out, std::uint32_t cp) {
    auto byte = [&out](std::uint32_t b) { out.push_back(static_cast<char>(b)); };
    if (cp < 0x80) {
      byte(cp);
    } else if (cp < 0x800) {
      byte(0xC0 | (cp >> 6));
      byte(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      byte(0xE0 | (cp >> 12));
      byte(0x80 | ((cp >> 6) & 0x3F));
      byte(0x80 | (cp & 0x3F));
    } else {
      byte(0xF0 | (cp >> 18));
      byte(0x80 | ((cp >> 12) & 0x3F));
      byte(0x80 | ((cp >> 6) & 0x3F));
      byte(0x80 | (cp & 0x3F));
    }
  }

  bool string(std::string& out) {
    ++pos_;  // the opening quote
    for (;;) {
      // Copy the run of plain bytes in one go.
      const std::size_t start = pos_;
      while (pos_ < s_.size() && s_[pos_] != '"' && s_[pos_] != '\\' &&
             static_cast<unsigned char>(s_[pos_]) >= 0x20) {
        ++pos_;
      }
      out.append(s_.substr(start, pos_ - start));
      if (pos_ >= s_.size()) return err("unterminated string");
      const char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c != '\\') return err("control character in a string");
      if (++pos_ >= s_.size()) return err("unterminated string");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return err("unpaired low surrogate");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            // RFC 8259 section 7: a character outside the BMP is a surrogate pair.
            if (s_.substr(pos_, 2) != "\\u") return err("unpaired high surrogate");
            pos_ += 2;
            std::uint32_t low = 0;
            if (!hex4(low)) return false;
            if (low < 0xDC00 || low > 0xDFFF) return err("unpaired high surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          put_utf8(out, cp);
          break;
        }
        default: --pos_; return err("bad escape");
      }
    }
  }

  // Rough decimal exponent of a valid JSON number: > 0 for |x| >= 1, <= 0 below.
  static std::int64_t magnitude(std::string_view n) {
    if (!n.empty() && n.front() == '-') n.remove_prefix(1);
    const auto e = n.find_first_of("eE");
    const std::string_view mant = n.substr(0, e);
    std::int64_t mag = 0;
    const auto dot = mant.find('.');
    const std::string_view whole = mant.substr(0, dot);
    if (whole != "0") {
      mag = static_cast<std::int64_t>(whole.size());
    } else if (dot != std::string_view::npos) {
      const auto frac = mant.substr(dot + 1);
      const auto nz = frac.find_first_not_of('0');
      mag = nz == std::string_view::npos ? std::numeric_limits<std::int32_t>::min()
                                         : -static_cast<std::int64_t>(nz);
    } else {
      return std::numeric_limits<std::int32_t>::min();  // zero
    }
    if (e != std::string_view::npos) {
      std::string_view ex = n.substr(e + 1);
      const bool neg = !ex.empty() && ex.front() == '-';
      if (!ex.empty() && (ex.front() == '-' || ex.front() == '+')) ex.remove_prefix(1);
      std::int64_t x = 0;
      for (const char c : ex) x = std::min<std::int64_t>(x * 10 + (c - '0'), 1'000'000'000);
      mag += neg ? -x : x;
    }
    return mag;
  }

  bool number(Value& out) {
    // RFC 8259 section 6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
    const std::size_t start = pos_;
    auto digit = [this] { return pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9'; };
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    if (!digit()) {
      pos_ = start;
      return err("unexpected character");
    }
    if (s_[pos_] == '0') {
      ++pos_;
    } else {
      while (digit()) ++pos_;
    }
    bool integral = true;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (!digit()) return err("digit expected after '.'");
      while (digit()) ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digit()) return err("digit expected in exponent");
      while (digit()) ++pos_;
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;
    out.type_ = Type::Number;
    if (integral) {
      std::int64_t i = 0;
      const auto [p, ec] = std::from_chars(first, last, i);
      if (ec == std::errc{} && p == last) {
        out.integral_ = true;
        out.int_ = i;
        out.number_ = static_cast<double>(i);
        return true;
      }
    }
    double d = 0;
    const auto [p, ec] = std::from_chars(first, last, d);
    if (ec == std::errc::result_out_of_range) {
      // The grammar allows what a double cannot hold: 1e999 becomes infinity, 1e-999 zero.
      const double sign = *first == '-' ? -1.0 : 1.0;
      d = sign * (magnitude(std::string_view(first, static_cast<std::size_t>(last - first))) > 0
                      ? std::numeric_limits<double>::infinity()
                      : 0.0);
    } else if (ec != std::errc{} || p != last) {
      return err("bad number");
    }
    out.number_ = d;
    return true;
  }

  std::string_view s_;
  const Limits& limits_;
  std::size_t pos_ = 0;
  std::size_t values_ = 0;
  std::string error_;
};

Result<Value> parse(std::string_view text, const Limits& limits) {
  return Parser(text, limits).run();
}

}  // namespace rampart::core::json
