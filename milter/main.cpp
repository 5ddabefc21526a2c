// rampart-milter: the libmilter daemon in smtpd_milters: exclusions, stream pinning, From identity,
// DKIM scope, hygiene. This build carries the shared start-up only (configuration, --check-config,
// --print-defaults); the daemon itself is issue 3. Running it says so and exits 70 rather than
// pretending.
#include <cstdio>

#include "config/program.hpp"

namespace {
constexpr std::string_view kUsage =
    "usage: rampart-milter [--config FILE] [--check-config] [--print-defaults]\n"
    "\n"
    "rampart-milter: the libmilter daemon in smtpd_milters: exclusions, stream pinning, From "
    "identity, DKIM scope, hygiene.";
}  // namespace

int main(int argc, char** argv) {
  try {
    auto s = rampart::config::start({"rampart-milter", RAMPART_VERSION, kUsage, false}, argc, argv);
    if (s.exit_now) return *s.exit_now;
    if (!s.rest.empty()) {
      std::fprintf(stderr,
                   "rampart-milter: unexpected argument '%s'\nTry 'rampart-milter --help'.\n",
                   s.rest[0].c_str());
      return 64;
    }
    std::fprintf(stderr,
                 "rampart-milter: the daemon is not part of this build yet (issue 3); "
                 "only --check-config and --print-defaults work\n");
    return 70;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rampart-milter: internal error: %s\n", e.what());
    return 70;
  }
}
