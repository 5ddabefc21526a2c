// rampart: the sidecar CLI beside Postfix. Parses global options and dispatches subcommands;
// each subcommand lives in commands/. Exit codes: 0 ok, 64 usage, 65 a name the rules do not
// know, 70 internal, 75 temporary (store unreachable), 78 configuration or rules error.
#include <cstdio>
#include <string>

#include "commands/context.hpp"
#include "config/program.hpp"

namespace {

constexpr std::string_view kUsage =
    "usage: rampart [--config FILE] [--store URL] COMMAND [ARGS]\n"
    "\n"
    "Outbound reputation guardrails for Postfix: rules in and out of the store, back-offs,\n"
    "budgets, the release of held mail and the classification of delivery logs.\n"
    "\n"
    "Commands:\n"
    "  db migrate                         apply pending schema migrations to the store\n"
    "  db status                          show schema and rules versions\n"
    "  rules check FILE...                validate rules files (no store needed)\n"
    "  rules apply [--dry-run] FILE...    validate and apply rules files in one transaction\n"
    "  rules export [--format toml|json]  print the rules in the store\n"
    "  rules list [--kind KIND]           list rules with their ids and origins\n"
    "                                     (KIND: stream, ramp, operator, cap, exclusion, "
    "classify)\n"
    "  backoff set STREAM OPERATOR (--factor F | --pause) --until WHEN --reason TEXT\n"
    "                                     scale down (F in (0, 1]) or pause a stream's budget\n"
    "                                     to an operator until WHEN (UTC time or 6h, 2d ...)\n"
    "  backoff clear STREAM OPERATOR      remove that back-off\n"
    "  backoff list [--all] [--format table|json]\n"
    "                                     list active back-offs (--all: expired ones too)\n"
    "  caps [--stream S] [--format table|json]\n"
    "                                     today's use against every limit, warm-up days,\n"
    "                                     gates, back-offs and leases\n"
    "  release [--dry-run] [--format table|json] [--limit N]\n"
    "                                     release held mail as its budget reopens\n"
    "  classify [--dry-run] [--format table|json] [--follow] FILE...|-\n"
    "                                     Postfix logs into per-operator reputation,\n"
    "                                     suppressions, back-offs and anomalies\n"
    "  dmarc ingest [--dry-run] [--format table|json] PATH...\n"
    "                                     store DMARC aggregate reports from files,\n"
    "                                     directories and Maildirs\n"
    "  dmarc fetch [--dry-run] [--format table|json]\n"
    "                                     the same from the [sidecar.dmarc] IMAP mailbox\n"
    "  report dmarc [--days N] [--format table|json|csv]\n"
    "                                     per source IP: DMARC pass, alignment, reporters\n"
    "\n"
    "Global options:\n"
    "  --store URL       use this store instead of [store] url\n"
    "                    (sqlite:///path/rampart.db or postgresql://...)\n"
    "\n"
    "Exit status: 0 ok, 64 usage error, 65 unknown stream or operator, 70 internal error,\n"
    "75 temporary failure (store unreachable: retry), 78 configuration or rules error.";

}  // namespace

int main(int argc, char** argv) {
  using namespace rampart;
  try {
    auto s = config::start({"rampart", RAMPART_VERSION, kUsage, true}, argc, argv);
    if (s.exit_now) return *s.exit_now;
    sidecar::Context ctx{std::move(s.cfg), {}};
    ctx.store_url = ctx.cfg.string("store", "url");
    auto& args = s.rest;
    std::size_t i = 0;
    for (; i < args.size() && args[i].starts_with("-"); ++i) {
      if (args[i] == "--store" && i + 1 < args.size()) {
        ctx.store_url = args[++i];
      } else if (args[i].starts_with("--store=")) {
        ctx.store_url = args[i].substr(8);
      } else {
        return sidecar::usage_error("unknown option '" + args[i] + "'");
      }
    }
    if (i == args.size()) return sidecar::usage_error("no command given");
    const std::string cmd = args[i];
    const sidecar::Args rest(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
    if (cmd == "db") return sidecar::cmd_db(ctx, rest);
    if (cmd == "rules") return sidecar::cmd_rules(ctx, rest);
    if (cmd == "backoff") return sidecar::cmd_backoff(ctx, rest);
    if (cmd == "caps") return sidecar::cmd_caps(ctx, rest);
    if (cmd == "release") return sidecar::cmd_release(ctx, rest);
    if (cmd == "classify") return sidecar::cmd_classify(ctx, rest);
    if (cmd == "dmarc") return sidecar::cmd_dmarc(ctx, rest);
    if (cmd == "report") return sidecar::cmd_report(ctx, rest);
    if (cmd == "help") {
      std::printf("%.*s\n", static_cast<int>(kUsage.size()), kUsage.data());
      return 0;
    }
    return sidecar::usage_error("unknown command '" + cmd + "'");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rampart: internal error: %s\n", e.what());
    return sidecar::kExitInternal;
  }
}
