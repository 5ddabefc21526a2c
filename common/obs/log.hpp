// Event logging: one line per event, `program[pid]: level event key=value ...` on stderr
// (journald adds time and host). The core never logs; adapters call this. Thread-safe.
#pragma once

#include <optional>
#include <string_view>

namespace rampart::obs {

enum class Level { Error, Warning, Info, Debug };
std::optional<Level> parse_level(std::string_view);

void init(std::string_view program, Level level);
bool enabled(Level level);
// `fields` is pre-formatted `key=value key=value`; values with spaces must be quoted by the caller.
void log(Level level, std::string_view event, std::string_view fields = {});

}  // namespace rampart::obs
