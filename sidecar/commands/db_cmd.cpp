// `rampart db migrate|status`: the store's schema.
#include <cstdio>

#include "commands/context.hpp"

namespace rampart::sidecar {

int cmd_db(const Context& ctx, const Args& args) {
  if (args.empty() || (args[0] != "migrate" && args[0] != "status")) {
    return usage_error("db: want 'db migrate' or 'db status'");
  }
  if (args.size() > 1)
    return usage_error("db " + args[0] + ": unexpected argument '" + args[1] + "'");
  auto st = ctx.open_store();
  if (!st) return report(st.error());
  auto& store = **st;
  if (args[0] == "migrate") {
    auto before = store.schema_version();
    if (!before) return report(before.error());
    auto v = store.migrate();
    if (!v) return report(v.error());
    if (*v == *before) {
      std::printf("schema version %d (%.*s): up to date\n", *v,
                  static_cast<int>(store.engine().size()), store.engine().data());
    } else {
      std::printf("schema version %d -> %d (%.*s)\n", *before, *v,
                  static_cast<int>(store.engine().size()), store.engine().data());
    }
    return kExitOk;
  }
  auto v = store.schema_version();
  if (!v) return report(v.error());
  std::printf("engine: %.*s\nschema_version: %d (this rampart: %d)\n",
              static_cast<int>(store.engine().size()), store.engine().data(), *v,
              store::latest_schema_version());
  if (*v == store::latest_schema_version()) {
    auto rv = store.rules_version();
    if (!rv) return report(rv.error());
    std::printf("rules_version: %lld\nrules_applied_at: %s\nrules_note: %s\n",
                static_cast<long long>(rv->version),
                rv->applied_at.empty() ? "never" : rv->applied_at.c_str(), rv->note.c_str());
  }
  return *v == store::latest_schema_version() ? kExitOk : kExitConfig;
}

}  // namespace rampart::sidecar
