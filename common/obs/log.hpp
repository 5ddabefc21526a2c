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
// A decision, Postfix style, keyed by queue id (DESIGN.md): `prog[pid]: QUEUEID: verdict fields`.
// queue_id "" is written NOQUEUE, as Postfix does before the queue file exists.
void decision(std::string_view queue_id, std::string_view verdict, std::string_view fields);

}  // namespace rampart::obs
