// `rampart rules check|apply|export|list`: the rules language in and out of the store.
// check needs no store; apply is one transaction (a bad file changes nothing).
#include <array>
#include <cstdio>
#include <numeric>

#include <fmt/format.h>

#include "commands/context.hpp"
#include "core/ruleset.hpp"
#include "rules/reader.hpp"
#include "rules/writer.hpp"

namespace rampart::sidecar {
namespace {

std::string summary(const core::RulesSpec& s) {
  std::size_t domains = 0, addresses = 0, enabled = 0;
  for (const auto& e : s.exclusions) {
    domains += e.domains.size();
    addresses += e.addresses.size();
    if (e.streams && !e.streams->empty()) ++enabled;
  }
  return fmt::format(
      "{} streams, {} ramps, {} operators, {} caps, {} exclusion categories ({} enabled; {} "
      "domains, {} "
      "addresses), {} classify rules",
      s.streams.size(), s.ramps.size(), s.operators.size(), s.caps.size(), s.exclusions.size(),
      enabled, domains, addresses, s.classify.size());
}

// Reads, merges and compiles the files; compile() is the full validation the daemons will do.
Result<core::RulesSpec> load_and_check(const Args& files) {
  auto spec = rules::load_files(files);
  if (!spec) return spec;
  auto compiled = core::RuleSet::compile(std::move(*spec));
  if (!compiled) return tl::unexpected(compiled.error());
  for (const auto& w : core::lint((*compiled)->spec()))
    std::fprintf(stderr, "rampart: warning: %s\n", w.c_str());
  return (*compiled)->spec();
}

std::string joined(const Args& a) {
  return std::accumulate(
      a.begin(), a.end(), std::string(),
      [](std::string acc, const std::string& s) { return acc.empty() ? s : acc + " " + s; });
}

int rules_check(const Args& files) {
  auto spec = load_and_check(files);
  if (!spec) return report(spec.error());
  std::printf("%s: ok: %s\n", joined(files).c_str(), summary(*spec).c_str());
  return kExitOk;
}

int rules_apply(const Context& ctx, const Args& files, bool dry_run) {
  auto spec = load_and_check(files);
  if (!spec) return report(spec.error());
  if (dry_run) {
    std::printf("would apply: %s\n", summary(*spec).c_str());
    return kExitOk;
  }
  auto st = ctx.open_store();
  if (!st) return report(st.error());
  auto v = (*st)->apply_rules(*spec, joined(files));
  if (!v) return report(v.error());
  std::printf("applied rules version %lld: %s\n", static_cast<long long>(v->version),
              summary(*spec).c_str());
  return kExitOk;
}

int rules_export(const Context& ctx, const std::string& format) {
  auto st = ctx.open_store();
  if (!st) return report(st.error());
  auto v = (*st)->rules_version();
  if (!v) return report(v.error());
  auto spec = (*st)->load_rules();
  if (!spec) return report(spec.error());
  if (format == "json") {
    std::fputs(rules::to_json(*spec).c_str(), stdout);
  } else {
    std::printf("# rampart rules export: rules version %lld, applied %s\n# from: %s\n\n",
                static_cast<long long>(v->version),
                v->applied_at.empty() ? "never" : v->applied_at.c_str(), v->note.c_str());
    std::fputs(rules::to_toml(*spec).c_str(), stdout);
  }
  return kExitOk;
}

int rules_list(const Context& ctx, const std::string& kind) {
  auto st = ctx.open_store();
  if (!st) return report(st.error());
  auto spec = (*st)->load_rules();
  if (!spec) return report(spec.error());
  std::vector<std::array<std::string, 4>> rows{{"KIND", "ID", "DETAIL", "ORIGIN"}};
  auto want = [&](std::string_view k) { return kind.empty() || kind == k; };
  if (want("stream")) {
    for (const auto& s : spec->streams) {
      rows.push_back(
          {"stream", s.name,
           fmt::format("transport={} egress_ip={} over_cap={}",
                       s.transport.empty() ? "-" : s.transport,
                       s.egress_ip.empty() ? "-" : s.egress_ip, core::to_string(s.over_cap)),
           s.origin.where()});
    }
  }
  if (want("ramp")) {
    for (const auto& r : spec->ramps) {
      std::string steps;
      for (const auto& st2 : r.steps) steps += fmt::format("{}d:{}/h ", st2.day, st2.hourly);
      if (!steps.empty()) steps.pop_back();
      rows.push_back({"ramp", r.name, steps, r.origin.where()});
    }
  }
  if (want("operator")) {
    for (const auto& o : spec->operators) {
      rows.push_back(
          {"operator", o.name, fmt::format("mx={}", fmt::join(o.mx, ",")), o.origin.where()});
    }
  }
  if (want("cap")) {
    for (const auto& c : spec->caps) {
      rows.push_back({"cap", c.id(),
                      c.until_day ? fmt::format("daily={} until_day={}", c.daily, *c.until_day)
                                  : fmt::format("daily={}", c.daily),
                      c.origin.where()});
    }
  }
  if (want("exclusion")) {
    for (const auto& e : spec->exclusions) {
      const std::string streams = !e.streams ? "(none)"
                                  : e.streams->empty()
                                      ? "(none)"
                                      : fmt::format("{}", fmt::join(*e.streams, ","));
      rows.push_back({"exclusion", e.category,
                      fmt::format("action={} streams={} domains={} addresses={}",
                                  core::to_string(e.effective_action()), streams, e.domains.size(),
                                  e.addresses.size()),
                      e.origin.where()});
    }
  }
  if (want("classify")) {
    for (const auto& c : spec->classify) {
      std::string detail =
          fmt::format("outcome={} category={}", core::to_string(c.outcome), c.category);
      if (!c.dsn.empty()) detail += fmt::format(" dsn={}", c.dsn);
      if (!c.op.empty()) detail += fmt::format(" operator={}", c.op);
      if (c.suppress) detail += fmt::format(" suppress={}", core::to_string(*c.suppress));
      if (c.backoff) detail += fmt::format(" backoff={}", core::to_string(*c.backoff));
      rows.push_back({"classify", c.id, detail, c.origin.where()});
    }
  }
  std::array<std::size_t, 4> width{};
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < 4; ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::printf("%s\n", fmt::format("{:<{}}  {:<{}}  {:<{}}  {}", r[0], width[0], r[1], width[1],
                                    r[2], width[2], r[3])
                            .c_str());
  }
  return kExitOk;
}

}  // namespace

int cmd_rules(const Context& ctx, const Args& args) {
  if (args.empty()) return usage_error("rules: want check, apply, export or list");
  const auto& sub = args[0];
  Args rest(args.begin() + 1, args.end());
  if (sub == "check" || sub == "apply") {
    bool dry_run = false;
    Args files;
    for (const auto& a : rest) {
      if (sub == "apply" && a == "--dry-run") {
        dry_run = true;
      } else if (a.starts_with("-") && a != "-") {
        return usage_error(fmt::format("rules {}: unknown option '{}'", sub, a));
      } else {
        files.push_back(a);
      }
    }
    if (files.empty())
      return usage_error(fmt::format("rules {}: name at least one rules FILE", sub));
    return sub == "check" ? rules_check(files) : rules_apply(ctx, files, dry_run);
  }
  if (sub == "export") {
    std::string format = "toml";
    for (std::size_t i = 0; i < rest.size(); ++i) {
      if (rest[i] == "--format" && i + 1 < rest.size()) {
        format = rest[++i];
      } else if (rest[i].starts_with("--format=")) {
        format = rest[i].substr(9);
      } else {
        return usage_error(fmt::format("rules export: unexpected argument '{}'", rest[i]));
      }
    }
    if (format != "toml" && format != "json")
      return usage_error("rules export: --format must be toml or json");
    return rules_export(ctx, format);
  }
  if (sub == "list") {
    std::string kind;
    for (std::size_t i = 0; i < rest.size(); ++i) {
      if (rest[i] == "--kind" && i + 1 < rest.size()) {
        kind = rest[++i];
      } else if (rest[i].starts_with("--kind=")) {
        kind = rest[i].substr(7);
      } else {
        return usage_error(fmt::format("rules list: unexpected argument '{}'", rest[i]));
      }
    }
    if (!kind.empty() && kind != "stream" && kind != "ramp" && kind != "operator" &&
        kind != "cap" && kind != "exclusion" && kind != "classify") {
      return usage_error(
          "rules list: --kind must be stream, ramp, operator, cap, exclusion or classify");
    }
    return rules_list(ctx, kind);
  }
  return usage_error(fmt::format("rules: unknown subcommand '{}'", sub));
}

}  // namespace rampart::sidecar
