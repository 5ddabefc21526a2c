// Rules writer: TOML (re-readable by rules::parse) and JSON. Pure; no I/O.
#include "rules/writer.hpp"

#include <fmt/format.h>

namespace rampart::rules {
namespace {

std::string quote(std::string_view s) {
  // The escapes TOML basic strings and JSON strings share; other controls as \uXXXX.
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + quote(v[i]);
  return out + "]";
}

std::string list(const std::vector<std::int64_t>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
  return out + "]";
}

// Long lists (exclusion domains) one per line so diffs of exported rules stay readable.
std::string long_list(const std::vector<std::string>& v, std::string_view indent) {
  if (v.size() <= 4) return list(v);
  std::string out = "[\n";
  for (const auto& s : v) out += fmt::format("{}{},\n", indent, quote(s));
  return out + "]";
}

}  // namespace

std::string json_quote(std::string_view s) { return quote(s); }
std::string toml_quote(std::string_view s) { return quote(s); }

std::string to_toml(const core::RulesSpec& spec) {
  std::string out;
  for (const auto& s : spec.streams) {
    out += fmt::format("[[stream]]\nname = {}\n", quote(s.name));
    if (!s.ports.empty()) out += fmt::format("ports = {}\n", list(s.ports));
    if (!s.clients.empty()) out += fmt::format("clients = {}\n", list(s.clients));
    if (!s.senders.empty()) out += fmt::format("senders = {}\n", list(s.senders));
    if (!s.sasl_users.empty()) out += fmt::format("sasl_users = {}\n", list(s.sasl_users));
    if (!s.transport.empty()) out += fmt::format("transport = {}\n", quote(s.transport));
    if (!s.egress_ip.empty()) out += fmt::format("egress_ip = {}\n", quote(s.egress_ip));
    if (!s.from_domains.empty()) out += fmt::format("from_domains = {}\n", list(s.from_domains));
    if (s.warmup) {
      out += fmt::format("warmup = {{ start = {}, count = {}, ramp = {}, min_daily = {} }}\n",
                         quote(s.warmup->start.str()), quote(to_string(s.warmup->count)),
                         quote(s.warmup->ramp), s.warmup->min_daily);
    }
    if (s.daily_ceiling) out += fmt::format("daily_ceiling = {}\n", *s.daily_ceiling);
    out += fmt::format("over_cap = {}\nhygiene = {}\n\n", quote(to_string(s.over_cap)),
                       quote(to_string(s.hygiene)));
  }
  for (const auto& r : spec.ramps) {
    out += fmt::format("[[ramp]]\nname = {}\nsteps = [\n", quote(r.name));
    for (const auto& st : r.steps)
      out += fmt::format("  {{ day = {}, hourly = {} }},\n", st.day, st.hourly);
    out += "]\n\n";
  }
  for (const auto& o : spec.operators) {
    out += fmt::format("[[operator]]\nname = {}\nmx = {}\n\n", quote(o.name), list(o.mx));
  }
  for (const auto& c : spec.caps) {
    out += fmt::format("[[cap]]\nstream = {}\noperator = {}\ndaily = {}\n", quote(c.stream),
                       quote(c.op), c.daily);
    if (c.until_day) out += fmt::format("until_day = {}\n", *c.until_day);
    out += "\n";
  }
  for (const auto& e : spec.exclusions) {
    out += fmt::format("[[exclusion]]\ncategory = {}\n", quote(e.category));
    if (e.action) out += fmt::format("action = {}\n", quote(to_string(*e.action)));
    if (e.streams) out += fmt::format("streams = {}\n", list(*e.streams));
    if (e.status) out += fmt::format("status = {}\n", quote(*e.status));
    out += fmt::format("domains = {}\naddresses = {}\n\n", long_list(e.domains, "  "),
                       long_list(e.addresses, "  "));
  }
  for (const auto& c : spec.classify) {
    out += fmt::format("[[classify]]\nid = {}\nreply = {}\n", quote(c.id), quote(c.reply));
    if (!c.dsn.empty()) out += fmt::format("dsn = {}\n", quote(c.dsn));
    if (!c.op.empty()) out += fmt::format("operator = {}\n", quote(c.op));
    out += fmt::format("outcome = {}\ncategory = {}\n", quote(to_string(c.outcome)),
                       quote(c.category));
    if (c.suppress) out += fmt::format("suppress = {}\n", quote(to_string(*c.suppress)));
    if (c.backoff) out += fmt::format("backoff = {}\n", quote(to_string(*c.backoff)));
    out += "tests = [\n";
    for (const auto& t : c.tests) out += fmt::format("  {},\n", quote(t));
    out += "]\n\n";
  }
  if (spec.feedback) {
    // Every key, defaults included: a later [feedback] replaces an earlier one whole, so the
    // export states the whole table in effect.
    const auto& f = *spec.feedback;
    out += fmt::format(
        "[feedback]\ncategory = {}\nsuppress_addresses = {}\naddress_expiry_days = {}\n"
        "suppress_domains = {}\ndomain_replies = {}\ndomain_days = {}\n"
        "domain_expiry_days = {}\nbackoff = {}\nbackoff_percent = {}\n"
        "backoff_min_attempts = {}\nbackoff_factor_percent = {}\nbackoff_hours = {}\n"
        "pause = {}\npause_hours = {}\n\n",
        quote(f.category), f.suppress_addresses, f.address_expiry_days, f.suppress_domains,
        f.domain_replies, f.domain_days, f.domain_expiry_days, f.backoff, f.backoff_percent,
        f.backoff_min_attempts, f.backoff_factor_percent, f.backoff_hours, f.pause, f.pause_hours);
  }
  return out;
}

std::string to_json(const core::RulesSpec& spec) {
  auto opt_int = [](const std::optional<std::int64_t>& v) {
    return v ? std::to_string(*v) : std::string("null");
  };
  std::string out = "{\n  \"streams\": [";
  for (std::size_t i = 0; i < spec.streams.size(); ++i) {
    const auto& s = spec.streams[i];
    std::string warmup = "null";
    if (s.warmup) {
      warmup = fmt::format(R"({{"start": {}, "count": {}, "ramp": {}, "min_daily": {}}})",
                           quote(s.warmup->start.str()), quote(to_string(s.warmup->count)),
                           quote(s.warmup->ramp), s.warmup->min_daily);
    }
    out += fmt::format(
        "{}\n    {{\"name\": {}, \"ports\": {}, \"clients\": {}, \"senders\": {}, \"sasl_users\": "
        "{}, "
        "\"transport\": {}, \"egress_ip\": {}, \"from_domains\": {}, \"warmup\": {}, "
        "\"daily_ceiling\": {}, "
        "\"over_cap\": {}, \"hygiene\": {}}}",
        i ? "," : "", quote(s.name), list(s.ports), list(s.clients), list(s.senders),
        list(s.sasl_users), quote(s.transport), quote(s.egress_ip), list(s.from_domains), warmup,
        opt_int(s.daily_ceiling), quote(to_string(s.over_cap)), quote(to_string(s.hygiene)));
  }
  out += "\n  ],\n  \"ramps\": [";
  for (std::size_t i = 0; i < spec.ramps.size(); ++i) {
    const auto& r = spec.ramps[i];
    std::string steps = "[";
    for (std::size_t k = 0; k < r.steps.size(); ++k) {
      steps += fmt::format(R"({}{{"day": {}, "hourly": {}}})", k ? ", " : "", r.steps[k].day,
                           r.steps[k].hourly);
    }
    out +=
        fmt::format("{}\n    {{\"name\": {}, \"steps\": {}]}}", i ? "," : "", quote(r.name), steps);
  }
  out += "\n  ],\n  \"operators\": [";
  for (std::size_t i = 0; i < spec.operators.size(); ++i) {
    const auto& o = spec.operators[i];
    out += fmt::format("{}\n    {{\"name\": {}, \"mx\": {}}}", i ? "," : "", quote(o.name),
                       list(o.mx));
  }
  out += "\n  ],\n  \"caps\": [";
  for (std::size_t i = 0; i < spec.caps.size(); ++i) {
    const auto& c = spec.caps[i];
    out += fmt::format(
        "{}\n    {{\"id\": {}, \"stream\": {}, \"operator\": {}, \"daily\": {}, \"until_day\": "
        "{}}}",
        i ? "," : "", quote(c.id()), quote(c.stream), quote(c.op), c.daily, opt_int(c.until_day));
  }
  out += "\n  ],\n  \"exclusions\": [";
  for (std::size_t i = 0; i < spec.exclusions.size(); ++i) {
    const auto& e = spec.exclusions[i];
    out += fmt::format(
        "{}\n    {{\"category\": {}, \"action\": {}, \"streams\": {}, \"status\": {}, \"domains\": "
        "{}, "
        "\"addresses\": {}}}",
        i ? "," : "", quote(e.category), e.action ? quote(to_string(*e.action)) : "null",
        e.streams ? list(*e.streams) : "null", e.status ? quote(*e.status) : "null",
        list(e.domains), list(e.addresses));
  }
  out += "\n  ],\n  \"classify\": [";
  for (std::size_t i = 0; i < spec.classify.size(); ++i) {
    const auto& c = spec.classify[i];
    out += fmt::format(
        "{}\n    {{\"id\": {}, \"reply\": {}, \"dsn\": {}, \"operator\": {}, \"outcome\": {}, "
        "\"category\": {}, \"suppress\": {}, \"backoff\": {}, \"tests\": {}}}",
        i ? "," : "", quote(c.id), quote(c.reply), c.dsn.empty() ? "null" : quote(c.dsn),
        c.op.empty() ? "null" : quote(c.op), quote(to_string(c.outcome)), quote(c.category),
        c.suppress ? quote(to_string(*c.suppress)) : "null",
        c.backoff ? quote(to_string(*c.backoff)) : "null", list(c.tests));
  }
  out += "\n  ],\n  \"feedback\": ";
  if (spec.feedback) {
    const auto& f = *spec.feedback;
    out += fmt::format(
        "{{\"category\": {}, \"suppress_addresses\": {}, \"address_expiry_days\": {}, "
        "\"suppress_domains\": {}, \"domain_replies\": {}, \"domain_days\": {}, "
        "\"domain_expiry_days\": {}, \"backoff\": {}, \"backoff_percent\": {}, "
        "\"backoff_min_attempts\": {}, \"backoff_factor_percent\": {}, \"backoff_hours\": {}, "
        "\"pause\": {}, \"pause_hours\": {}}}",
        quote(f.category), f.suppress_addresses, f.address_expiry_days, f.suppress_domains,
        f.domain_replies, f.domain_days, f.domain_expiry_days, f.backoff, f.backoff_percent,
        f.backoff_min_attempts, f.backoff_factor_percent, f.backoff_hours, f.pause, f.pause_hours);
  } else {
    out += "null";  // no file has a [feedback] table: the built-in defaults apply
  }
  out += "\n}\n";
  return out;
}

}  // namespace rampart::rules
