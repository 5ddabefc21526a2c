// rampart-policyd: the Postfix policy daemon (check_policy_service): per-operator caps, warm-up
// ramps, gates, back-offs. This build carries the shared start-up only (configuration,
// --check-config, --print-defaults); the daemon itself is issue 4. Running it says so and exits 70
// rather than pretending.
#include <cstdio>

#include "config/program.hpp"

namespace {
constexpr std::string_view kUsage =
    "usage: rampart-policyd [--config FILE] [--check-config] [--print-defaults]\n"
    "\n"
    "rampart-policyd: the Postfix policy daemon (check_policy_service): per-operator caps, warm-up "
    "ramps, gates, back-offs.";
}  // namespace

int main(int argc, char** argv) {
  try {
    auto s =
        rampart::config::start({"rampart-policyd", RAMPART_VERSION, kUsage, false}, argc, argv);
    if (s.exit_now) return *s.exit_now;
    if (!s.rest.empty()) {
      std::fprintf(stderr,
                   "rampart-policyd: unexpected argument '%s'\nTry 'rampart-policyd --help'.\n",
                   s.rest[0].c_str());
      return 64;
    }
    std::fprintf(stderr,
                 "rampart-policyd: the daemon is not part of this build yet (issue 4); "
                 "only --check-config and --print-defaults work\n");
    return 70;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rampart-policyd: internal error: %s\n", e.what());
    return 70;
  }
}
