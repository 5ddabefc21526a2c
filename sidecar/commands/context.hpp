// What every `rampart` subcommand gets: the loaded configuration, the store URL in force, and
// the mapping from errors to exit codes and messages. Sidecar-internal.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/result.hpp"
#include "store/store.hpp"

namespace rampart::sidecar {

// Exit codes (sysexits): DESIGN/issue contract.
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 64;     // EX_USAGE: bad command line
inline constexpr int kExitData = 65;      // EX_DATAERR: names nothing in the store's rules
inline constexpr int kExitInternal = 70;  // EX_SOFTWARE
inline constexpr int kExitTemp = 75;      // EX_TEMPFAIL: store unreachable, retry later
inline constexpr int kExitConfig = 78;    // EX_CONFIG: configuration or rules error

struct Context {
  config::Config cfg;
  std::string store_url;  // [store] url, or --store URL

  [[nodiscard]] Result<std::unique_ptr<store::Store>> open_store() const;
};

// Prints `rampart: <what>` to stderr and returns the exit code for the error.
int report(const Error& e);
// Prints `rampart: <what>` and a hint to stderr; returns kExitUsage.
int usage_error(const std::string& what);

using Args = std::vector<std::string>;
int cmd_db(const Context& ctx, const Args& args);
int cmd_rules(const Context& ctx, const Args& args);
int cmd_backoff(const Context& ctx, const Args& args);
int cmd_caps(const Context& ctx, const Args& args);
int cmd_release(const Context& ctx, const Args& args);
int cmd_classify(const Context& ctx, const Args& args);
int cmd_dmarc(const Context& ctx, const Args& args);
int cmd_report(const Context& ctx, const Args& args);

}  // namespace rampart::sidecar
