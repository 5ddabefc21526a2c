// Shared start-up of the three binaries: see program.hpp.
#include "config/program.hpp"

#include <cstdio>

namespace rampart::config {

Startup start(const Program& program, int argc, char** argv) {
  Startup s;
  CommonFlags flags;
  auto rest = parse_common_flags(argc, argv, flags, program.subcommands);
  if (!rest) {
    std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(program.name.size()), program.name.data(),
                 rest.error().what.c_str());
    s.exit_now = 64;  // EX_USAGE
    return s;
  }
  s.rest = std::move(*rest);
  if (flags.help) {
    std::printf("%.*s\nCommon options:\n%.*s", static_cast<int>(program.usage.size()),
                program.usage.data(), static_cast<int>(common_flags_help.size()),
                common_flags_help.data());
    s.exit_now = 0;
    return s;
  }
  if (flags.version) {
    std::printf("%.*s %.*s\n", static_cast<int>(program.name.size()), program.name.data(),
                static_cast<int>(program.version.size()), program.version.data());
    s.exit_now = 0;
    return s;
  }
  if (flags.print_defaults) {
    std::fputs(print_defaults().c_str(), stdout);
    s.exit_now = 0;
    return s;
  }
  auto cfg = load(flags.config_path, flags.config_given);
  if (!cfg) {
    std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(program.name.size()), program.name.data(),
                 cfg.error().what.c_str());
    s.exit_now = exit_code(cfg.error().code);
    return s;
  }
  if (flags.check_config) {
    std::printf("%s: configuration ok\n", cfg->source().c_str());
    s.exit_now = 0;
    return s;
  }
  s.cfg = std::move(*cfg);
  return s;
}

}  // namespace rampart::config
