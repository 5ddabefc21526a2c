// The compiled reply classification table ([[classify]] rules, issue 5 point 4): delivery reply
// text (+ dsn, + receiving operator) -> outcome and category, first match in rule order, with one
// RE2::Set pass over every pattern as the prefilter. Pure; no I/O, never logs (RE2 logging off).
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "core/rules.hpp"

namespace rampart::core {

struct Classification {
  const ClassifySpec* rule = nullptr;  // never null: the rule that matched, or a built-in "default"
  Outcome outcome = Outcome::DeferredOther;
  std::string_view category;  // rule->category
};

// "550 5.1.1 ..." / "550-5.7.1 ..." / "dsn=4.4.1" pieces of a reply, found without regexes.
struct ReplyCode {
  int code = 0;             // 3-digit SMTP reply code at the start of the text, 0 when none
  std::string_view status;  // enhanced status right after the code ("5.1.1"), empty when none
};
ReplyCode parse_reply_code(std::string_view reply);

// The [[classify]] `dsn` glob: dot-separated parts, each digits or "*"; a "*" matches one part,
// a trailing "*" matches the rest ("4.*" covers 4.4.1 and 4.7.500; "5.*.1" covers 5.1.1 and
// 5.7.1 but not 5.7.10). Empty matches anything.
bool valid_dsn_pattern(std::string_view pattern);
bool dsn_matches(std::string_view pattern, std::string_view dsn);

class Classifier {
 public:
  // Compiles the patterns (case-insensitive, Latin-1 so any byte is harmless) into the set; the
  // per-rule patterns of classify_linear() are compiled on its first call.
  // Errors (Errc::Config) name file:line and the rule: `x.toml:4: classify "ms-busy": bad pattern
  // "(x": missing ): (x`. Does not check the rules' test lines: check_tests() does.
  [[nodiscard]] static Result<Classifier> compile(std::vector<ClassifySpec> rules);

  // First rule, in table order, whose reply pattern matches `reply` and whose dsn glob and
  // operator (when set) match. `dsn` empty: the enhanced status in the reply text is used, else
  // "c.0.0" from the reply code (as Postfix logs it); no code either: no dsn glob matches.
  // No rule: the built-in "default" by class (code, else dsn; none: 4): 2 -> accepted/other,
  // 4 -> deferred_other/other, 5 -> reject_other/other. Thread-safe: each thread keeps the set's
  // answers for its 64 most recent replies (up to 512 bytes), which a repeat reuses.
  Classification classify(std::string_view reply, std::string_view dsn = {},
                          std::string_view op = {}) const;

  // Same answer by trying each rule in order (no prefilter): the reference the set is measured
  // against and tested to agree with.
  Classification classify_linear(std::string_view reply, std::string_view dsn = {},
                                 std::string_view op = {}) const;

  // "No dead rules": each test line of each rule must classify to that rule (with the rule's own
  // operator; a leading "dsn=X.Y.Z " gives the dsn). The first failure is an Errc::Config error
  // naming file:line, the rule, the line and what it hit instead.
  [[nodiscard]] Result<void> check_tests() const;

  const std::vector<ClassifySpec>& rules() const;

  Classifier(Classifier&&) noexcept;
  Classifier& operator=(Classifier&&) noexcept;
  ~Classifier();

 private:
  struct Impl;
  explicit Classifier(std::unique_ptr<Impl> impl);
  Classification linear(std::string_view reply, std::string_view dsn, std::string_view op) const;
  std::unique_ptr<Impl> impl_;
};

// Splits a test line into (dsn, reply): "dsn=4.4.1 connect to ..." -> ("4.4.1", "connect to ...").
std::pair<std::string_view, std::string_view> split_test_line(std::string_view line);

}  // namespace rampart::core
