// Context helpers for `rampart` subcommands: opening the store with the configured timeouts and
// turning errors into messages and exit codes.
#include "commands/context.hpp"

#include <cstdio>

namespace rampart::sidecar {

Result<std::unique_ptr<store::Store>> Context::open_store() const {
  store::OpenOptions opts;
  opts.connect_timeout = cfg.duration("store", "connect_timeout");
  opts.busy_timeout = cfg.duration("store", "busy_timeout");
  return store::open(store_url, opts);
}

int report(const Error& e) {
  std::fprintf(stderr, "rampart: %s\n", e.what.c_str());
  switch (e.code) {
    case Errc::Temporary: return kExitTemp;
    case Errc::Config: return kExitConfig;
    case Errc::Invalid: return kExitConfig;  // bad input files are the operator's to fix
    case Errc::Internal: return kExitInternal;
  }
  return kExitInternal;
}

int usage_error(const std::string& what) {
  std::fprintf(stderr, "rampart: %s\nTry 'rampart --help'.\n", what.c_str());
  return kExitUsage;
}

}  // namespace rampart::sidecar
