// Reading the rules language (DESIGN.md, "Rule tables") from TOML text and files. parse() is
// pure; load_files() reads files and expands `include = [globs]`. Neither validates references
// between tables: core::validate()/RuleSet::compile() do, once the whole set is merged.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "core/rules.hpp"

namespace rampart::rules {

struct ParsedFile {
  core::RulesSpec spec;
  std::vector<std::string> includes;  // the file's `include` globs, as written
};

// One file's text. Errors (Errc::Config) name file:line and the key, e.g.
// `rules.toml:14: stream "bulk": unknown key "port"`.
[[nodiscard]] Result<ParsedFile> parse(std::string_view toml_text, std::string_view file_name);

// Reads each path in order (a path may itself be a glob), expanding includes depth-first before
// the including file's own entries (relative globs are relative to the including file), and
// merges everything with core::merge_into(). A file reached twice is read once. An include glob
// matching nothing is not an error; a path given on the command line that does not exist is.
[[nodiscard]] Result<core::RulesSpec> load_files(const std::vector<std::string>& paths);

}  // namespace rampart::rules
