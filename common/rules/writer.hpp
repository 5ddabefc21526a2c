// Writing a rule set back out: TOML in the rules language (re-readable by rules::parse) and a
// stable JSON form for tools. Pure; no I/O. Origins are not written: only what the rules say.
#pragma once

#include <string>

#include "core/rules.hpp"

namespace rampart::rules {

std::string to_toml(const core::RulesSpec& spec);
std::string to_json(const core::RulesSpec& spec);

// JSON and TOML basic-string escaping, with the surrounding quotes.
std::string json_quote(std::string_view s);
std::string toml_quote(std::string_view s);

}  // namespace rampart::rules
