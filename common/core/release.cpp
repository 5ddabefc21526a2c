// The pure half of `rampart release` (see release.hpp). Pure; no I/O, no clock.
#include "core/release.hpp"

#include <algorithm>
#include <charconv>
#include <set>

#include <fmt/format.h>

#include "core/json.hpp"
#include "core/text.hpp"

namespace rampart::core {

Result<QueuedMessage> parse_postqueue_line(std::string_view line) {
  json::Limits limits;
  limits.max_bytes = 4 << 20;  // a message with many recipients makes a long line
  limits.max_depth = 8;
  limits.max_values = 1'000'000;
  auto v = json::parse(line, limits);
  if (!v) return tl::unexpected(v.error());
  if (v->type() != json::Type::Object) return fail(Errc::Invalid, "postqueue: line is no object");
  QueuedMessage m;
  auto text = [&](std::string_view key, std::string& out, bool required) -> Result<void> {
    const json::Value* f = v->find(key);
    if (f == nullptr && !required) return {};
    if (f == nullptr || f->string() == nullptr) {
      return fail(Errc::Invalid, fmt::format("postqueue: {} missing or not a string", key));
    }
    out = *f->string();
    return {};
  };
  if (auto r = text("queue_name", m.queue_name, true); !r) return tl::unexpected(r.error());
  if (auto r = text("queue_id", m.queue_id, true); !r) return tl::unexpected(r.error());
  if (auto r = text("sender", m.sender, false); !r) return tl::unexpected(r.error());
  const json::Value* at = v->find("arrival_time");
  if (at == nullptr || !at->integer()) {
    return fail(Errc::Invalid, "postqueue: arrival_time missing or not an integer");
  }
  m.arrival_time = *at->integer();
  if (const json::Value* size = v->find("message_size"); size != nullptr && size->integer()) {
    m.message_size = *size->integer();
  }
  const json::Value* rcpts = v->find("recipients");
  if (rcpts == nullptr || rcpts->array() == nullptr) {
    return fail(Errc::Invalid, "postqueue: recipients missing or not an array");
  }
  for (const auto& r : *rcpts->array()) {
    const json::Value* addr = r.find("address");
    if (addr == nullptr || addr->string() == nullptr) {
      return fail(Errc::Invalid, "postqueue: a recipient has no address");
    }
    m.recipients.push_back(*addr->string());
  }
  return m;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

constexpr std::string_view kStreamHeader = "X-Rampart-Stream";

}  // namespace

QueueFileInfo parse_postcat(std::string_view text) {
  QueueFileInfo info;
  enum class Section : std::uint8_t { Envelope, Headers, Rest };
  // postcat -e -h: "*** ENVELOPE RECORDS ..." then records, "*** MESSAGE CONTENTS ..." then the
  // headers, "*** HEADER EXTRACTED ..." (or the body with -b). Without -e the headers come first.
  Section section = text.starts_with("*** ENVELOPE") ? Section::Envelope : Section::Headers;
  std::string name, value;  // the header being read (continuation lines join it)
  auto flush = [&] {
    if (!name.empty() && iequals(name, kStreamHeader)) {
      info.stream_headers.emplace_back(trim(value));
    }
    name.clear();
    value.clear();
  };
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.starts_with("*** ")) {
      flush();
      if (line.starts_with("*** MESSAGE CONTENTS")) {
        section = Section::Headers;
      } else if (line.starts_with("*** ENVELOPE")) {
        section = Section::Envelope;
      } else {
        section = Section::Rest;
      }
      continue;
    }
    if (section == Section::Envelope) {
      // "<record type>: <value>" (postcat prints "sender: " for the null sender).
      const auto colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      const auto kind = line.substr(0, colon);
      auto rest = line.substr(colon + 1);
      if (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
      if (kind == "named_attribute") {
        const auto eq = rest.find('=');
        if (eq != std::string_view::npos) {
          info.attributes.emplace(std::string(rest.substr(0, eq)),
                                  std::string(rest.substr(eq + 1)));
        }
      } else if (kind == "sender" && !info.sender) {
        info.sender = std::string(rest);
      }
    } else if (section == Section::Headers) {
      if (line.empty()) {  // end of the header block
        flush();
        section = Section::Rest;
      } else if (line.front() == ' ' || line.front() == '\t') {
        if (!name.empty()) value.append(line);  // RFC 5322 2.2.3 unfolding: drop the CRLF only
      } else {
        flush();
        const auto colon = line.find(':');
        if (colon != std::string_view::npos) {
          name = std::string(line.substr(0, colon));
          value = std::string(line.substr(colon + 1));
        }
      }
    }
  }
  flush();
  return info;
}

std::string_view stream_header_name(std::string_view value) {
  value = trim(value);
  const auto end = value.find_first_of(" \t");
  const auto name = value.substr(0, end);
  return name == "-" ? std::string_view{} : name;
}

std::string_view to_string(StreamSource s) {
  switch (s) {
    case StreamSource::Header: return "header";
    case StreamSource::Envelope: return "envelope";
    case StreamSource::None: return "none";
  }
  return "?";
}

StreamFound find_stream(const RuleSet& rules, const QueueFileInfo& info) {
  std::set<std::string_view> names;
  for (const auto& h : info.stream_headers) names.insert(stream_header_name(h));
  StreamFound found;
  if (names.size() == 1) {
    const std::string_view name = *names.begin();
    if (name.empty()) {
      found.detail = "X-Rampart-Stream: - (rampart-milter found no stream)";
      return found;
    }
    found.stream = rules.stream(name);
    if (found.stream == nullptr) {
      found.detail = fmt::format("X-Rampart-Stream names stream {:?}, which is not in the rules",
                                 std::string(name));
      return found;
    }
    found.source = StreamSource::Header;
    return found;
  }
  // The envelope as rampart-policyd saw it (POSTFIX-NOTES: cleanup records client_address,
  // server_port and, for an authenticated client, sasl_username as named attributes).
  StreamQuery q;
  auto attr = [&](std::string_view key) -> std::string_view {
    const auto it = info.attributes.find(key);
    return it == info.attributes.end() ? std::string_view{} : std::string_view(it->second);
  };
  const std::string_view port = attr("server_port");
  std::int64_t p = 0;
  if (!port.empty()) {
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec == std::errc{} && end == port.data() + port.size()) q.port = p;
  }
  q.client_addr = attr("client_address");
  q.sender = info.sender ? std::string_view(*info.sender) : std::string_view{};
  q.sasl_user = attr("sasl_username");
  found.stream = rules.resolve_stream(q);
  if (found.stream != nullptr) {
    found.source = StreamSource::Envelope;
    return found;
  }
  found.detail = names.empty()
                     ? "no X-Rampart-Stream header and no stream matches the envelope"
                     : "conflicting X-Rampart-Stream headers and no stream matches the envelope";
  return found;
}

std::optional<ExcludedRecipient> held_by_exclusion(const RuleSet& rules, const StreamSpec* stream,
                                                   std::span<const std::string> recipients) {
  for (const auto& r : recipients) {
    const auto hit = rules.find_exclusion(stream, r);
    if (hit && hit->rule->effective_action() == ExclusionAction::Hold) {
      return ExcludedRecipient{r, hit->rule};
    }
  }
  return std::nullopt;
}

std::vector<Need> release_needs(const RuleSet& rules, const StreamSpec& stream,
                                std::span<const ReleaseRecipient> recipients,
                                std::span<const DayCount> history,
                                std::span<const Backoff> backoffs, UnixTime now) {
  std::vector<Need> out;
  auto add = [&out](const Limit& l) {
    const std::string key = l.scope.key();
    for (auto& n : out) {
      if (n.limit.scope.key() == key) {
        ++n.units;
        return;
      }
    }
    out.push_back({l, 1});
  };
  for (const auto& r : recipients) {
    if (!r.charged) continue;
    for (const auto& l : limits_for(rules, stream, r.op, history, backoffs, now).limits) add(l);
  }
  return out;
}

Shortfall shortfall(const Need& need, std::size_t index, std::int64_t used,
                    std::span<const Bucket> window, UnixTime now) {
  const Limit& l = need.limit;
  Shortfall s{index, used, std::nullopt, {}};
  std::string extra;
  if (l.limit > 0 && need.units > l.limit) {
    // All or nothing can never pass this one; only an operator can (postsuper -H).
    extra = fmt::format("; needs {}, more than the whole limit: release it by hand", need.units);
  } else {
    extra = fmt::format("; needs {}", need.units);
    if (l.limit > 0 && l.kind == LimitKind::Hourly) {
      // used + units <= limit once fewer than limit - units + 1 charges are left in the window.
      s.reopens = window_reopens(window, l.limit - need.units + 1, now);
    } else {
      s.reopens = reopens(l, window, now);
    }
  }
  std::string text = over_limit_text(l, used, l.scope.op, s.reopens);
  if (text.starts_with("rampart: ")) text.erase(0, 9);
  const auto at = text.find("; reopens");
  text.insert(at == std::string::npos ? text.size() : at, extra);
  s.text = std::move(text);
  return s;
}

UnixTime lease_expiry(const Scope& scope, UnixTime now, std::int64_t ttl) {
  const UnixTime expires = now + ttl;
  if (scope.hourly()) return expires;
  return std::min(expires, (day_of(now) + 1) * kDaySeconds);
}

void Ledger::add(std::string_view scope, std::int64_t bucket, std::int64_t used) {
  auto it = rows_.find(scope);
  if (it == rows_.end())
    it = rows_.emplace(std::string(scope), std::map<std::int64_t, std::int64_t>{}).first;
  it->second[bucket] += used;
}

std::vector<Bucket> Ledger::window(std::string_view scope) const {
  std::vector<Bucket> out;
  const auto it = rows_.find(scope);
  if (it == rows_.end()) return out;
  for (const auto& [bucket, used] : it->second) out.push_back({bucket, used});
  return out;
}

std::int64_t Ledger::used(const Scope& scope, UnixTime now) const {
  const std::string key = scope.key();
  if (scope.hourly()) return window_used(window(key), now);
  const auto it = rows_.find(key);
  if (it == rows_.end()) return 0;
  const auto b = it->second.find(day_of(now));
  return b == it->second.end() ? 0 : b->second;
}

std::optional<Shortfall> Ledger::take(std::span<const Need> needs, UnixTime now) {
  // The message waits for its slowest limit: report the one that reopens last (never = last).
  std::optional<Shortfall> worst;
  for (std::size_t i = 0; i < needs.size(); ++i) {
    const auto& n = needs[i];
    const std::int64_t u = used(n.limit.scope, now);
    if (grant(n.limit.limit, u, n.units) >= n.units) continue;
    auto s = shortfall(n, i, u, window(n.limit.scope.key()), now);
    if (!worst || (worst->reopens && (!s.reopens || *s.reopens > *worst->reopens))) {
      worst = std::move(s);
    }
  }
  if (worst) return worst;
  for (const auto& n : needs) {
    const auto& scope = n.limit.scope;
    add(scope.key(), scope.charge_bucket(now, lease_expiry(scope, now, ttl_)), n.units);
  }
  return std::nullopt;
}

}  // namespace rampart::core
