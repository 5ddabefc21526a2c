// The command-line flags every rampart program shares (--config, --check-config, --print-defaults,
// --help, --version). Pure: reads argv only; the caller acts on the flags and parses the rest.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "core/result.hpp"

namespace rampart::config {

struct CommonFlags {
  std::string config_path = std::string(default_path);  // --config FILE / --config=FILE
  bool config_given = false;    // --config was used: a missing file is then an error
  bool check_config = false;    // --check-config: load the configuration, report, exit
  bool print_defaults = false;  // --print-defaults: print print_defaults() and exit
  bool help = false;            // -h / --help
  bool version = false;         // --version
};

// Help text for the shared flags, for each program's --help (two-space indent, one per line).
inline constexpr std::string_view common_flags_help =
    "  --config FILE     read FILE instead of /etc/rampart/rampart.toml\n"
    "  --check-config    check the configuration and exit (0 if valid, 78 if not)\n"
    "  --print-defaults  print every setting with its default and help, as TOML\n"
    "  -h, --help        print this help and exit\n"
    "  --version         print the version and exit\n";

// Consumes the shared flags from argv[1..argc) into out and returns the other arguments in order
// (argv[0] excluded). Unknown words starting with '-' are returned for the caller. Scanning stops
// at "--" (which is returned with everything after it) and, when stop_at_first_positional is true
// (the rampart command's subcommands), at the first word not starting with '-' (returned with
// everything after it). A repeated --config: the last one wins.
// Errors (Errc::Config): --config without a file name, or with an empty one or one starting
// with '-'.
[[nodiscard]] Result<std::vector<std::string>> parse_common_flags(int argc, char** argv,
                                                                  CommonFlags& out,
                                                                  bool stop_at_first_positional);

}  // namespace rampart::config
