// The shared command-line flags of the rampart programs: a small scanner over argv that takes
// what it knows and hands everything else back in order. Pure: no I/O.
#include "config/cli.hpp"

#include <fmt/format.h>

namespace rampart::config {

namespace {

Result<std::string> config_value(std::string_view value) {
  if (value.empty()) return fail(Errc::Config, "--config: empty file name");
  if (value.front() == '-') {
    // Most likely a forgotten file name ("--config --check-config"), not a file called "-x".
    return fail(Errc::Config, fmt::format("--config: expected a file name, got {:?}", value));
  }
  return std::string(value);
}

}  // namespace

Result<std::vector<std::string>> parse_common_flags(int argc, char** argv, CommonFlags& out,
                                                    bool stop_at_first_positional) {
  constexpr std::string_view config_eq = "--config=";
  std::vector<std::string> rest;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string_view arg = argv[i] != nullptr ? argv[i] : "";
    if (arg == "--") break;
    if (arg == "--config") {
      if (i + 1 >= argc || argv[i + 1] == nullptr) {
        return fail(Errc::Config, "--config: missing file name");
      }
      auto path = config_value(argv[++i]);
      if (!path) return tl::unexpected(std::move(path.error()));
      out.config_path = std::move(*path);
      out.config_given = true;
    } else if (arg.starts_with(config_eq)) {
      auto path = config_value(arg.substr(config_eq.size()));
      if (!path) return tl::unexpected(std::move(path.error()));
      out.config_path = std::move(*path);
      out.config_given = true;
    } else if (arg == "--check-config") {
      out.check_config = true;
    } else if (arg == "--print-defaults") {
      out.print_defaults = true;
    } else if (arg == "-h" || arg == "--help") {
      out.help = true;
    } else if (arg == "--version") {
      out.version = true;
    } else if (stop_at_first_positional && (!arg.starts_with('-') || arg == "-")) {
      break;  // a subcommand: it and its arguments belong to the caller
    } else {
      rest.emplace_back(arg);
    }
  }
  for (; i < argc; ++i) rest.emplace_back(argv[i] != nullptr ? argv[i] : "");
  return rest;
}

}  // namespace rampart::config
