// The start-up every rampart binary shares: common flags, loading the configuration, and the
// --help / --version / --print-defaults / --check-config answers. Adapter (reads files, prints).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/cli.hpp"
#include "config/config.hpp"

namespace rampart::config {

struct Program {
  std::string_view name;     // "rampart", "rampart-milter", ...
  std::string_view version;  // PROJECT_VERSION
  std::string_view usage;    // the program's own help text (first lines of --help)
  bool subcommands = false;  // stop flag parsing at the first positional word (rampart CLI)
};

struct Startup {
  std::optional<int> exit_now;    // set: print done, exit with this status
  Config cfg;                     // valid when exit_now is unset
  std::vector<std::string> rest;  // arguments the common flags did not consume
};

// Parses the common flags and loads the configuration. Answers --help, --version,
// --print-defaults and --check-config itself (exit_now = 0, or 78 for a bad configuration).
// Errors print `<name>: <message>` on stderr: 64 for a bad command line, 78 for configuration.
Startup start(const Program& program, int argc, char** argv);

}  // namespace rampart::config
