// RuleSet: compilation of a validated RulesSpec into matchers, and the lookups. Pure.
#include "core/ruleset.hpp"

#include <algorithm>

#include "core/text.hpp"

namespace rampart::core {

Result<std::shared_ptr<const RuleSet>> RuleSet::compile(RulesSpec spec, std::int64_t version,
                                                        ClassifyCheck classify) {
  if (auto v = validate(spec, classify); !v) return tl::unexpected(v.error());
  std::shared_ptr<RuleSet> rs(new RuleSet());
  rs->spec_ = std::move(spec);
  rs->version_ = version;
  const auto& sp = rs->spec_;

  for (const auto& s : sp.streams) {
    CompiledStream cs;
    for (const auto& c : s.clients) cs.clients.add(*Cidr::parse(c));  // validated above
    for (const auto& snd : s.senders) {
      if (snd.front() == '@') {
        cs.sender_domains.insert(std::string_view(snd).substr(1), 0);
      } else {
        cs.sender_addresses.insert(snd, 0, DomainTable::Self);
      }
    }
    rs->selects_on_ports_ = rs->selects_on_ports_ || !s.ports.empty();
    cs.selectors = (s.ports.empty() ? 0 : 1) + (s.clients.empty() ? 0 : 1) +
                   (s.senders.empty() ? 0 : 1) + (s.sasl_users.empty() ? 0 : 1);
    rs->streams_.push_back(std::move(cs));
  }

  // One exclusion index per stream plus one for unpinned mail; the first category listing a
  // domain or address owns it (spec order), so a lookup names exactly one rule.
  rs->exclusions_.resize(sp.streams.size() + 1);
  for (std::size_t e = 0; e < sp.exclusions.size(); ++e) {
    const auto& ex = sp.exclusions[e];
    if (!ex.streams) continue;  // defined but applied to no stream
    const bool all = std::find(ex.streams->begin(), ex.streams->end(), "*") != ex.streams->end();
    for (std::size_t s = 0; s <= sp.streams.size(); ++s) {
      const bool applies =
          all || (s < sp.streams.size() && std::find(ex.streams->begin(), ex.streams->end(),
                                                     sp.streams[s].name) != ex.streams->end());
      if (!applies) continue;
      auto& idx = rs->exclusions_[s];
      const auto value = static_cast<std::uint32_t>(e);
      for (const auto& d : ex.domains) idx.domains.insert(d, value);
      for (const auto& a : ex.addresses) idx.addresses.insert(a, value, DomainTable::Self);
    }
  }

  for (std::size_t o = 0; o < sp.operators.size(); ++o) {
    for (const auto& m : sp.operators[o].mx) {
      const bool dot = m.front() == '.';
      rs->mx_suffixes_.insert(dot ? std::string_view(m).substr(1) : std::string_view(m),
                              static_cast<std::uint32_t>(o),
                              dot ? DomainTable::Subdomains : DomainTable::SelfAndSubdomains);
    }
  }
  return std::shared_ptr<const RuleSet>(std::move(rs));
}

bool RuleSet::stream_matches(std::size_t i, const StreamQuery& q,
                             const std::optional<IpAddress>& client) const {
  const auto& s = spec_.streams[i];
  const auto& cs = streams_[i];
  if (!s.ports.empty()) {
    if (!q.port || std::find(s.ports.begin(), s.ports.end(), *q.port) == s.ports.end())
      return false;
  }
  if (!cs.clients.empty() && (!client || !cs.clients.contains(*client))) return false;
  if (!s.senders.empty()) {
    std::string_view snd = q.sender;
    if (snd.size() >= 2 && snd.front() == '<' && snd.back() == '>')
      snd = snd.substr(1, snd.size() - 2);
    const auto at = snd.rfind('@');
    if (at == std::string_view::npos) return false;  // null sender or no domain
    if (!cs.sender_addresses.find(snd) && !cs.sender_domains.find_covering(snd.substr(at + 1)))
      return false;
  }
  if (!s.sasl_users.empty()) {
    if (q.sasl_user.empty() ||
        std::find(s.sasl_users.begin(), s.sasl_users.end(), q.sasl_user) == s.sasl_users.end()) {
      return false;
    }
  }
  return true;
}

const StreamSpec* RuleSet::resolve_stream(const StreamQuery& q) const {
  const auto client = q.client_addr.empty() ? std::nullopt : IpAddress::parse(q.client_addr);
  const StreamSpec* best = nullptr;
  int best_selectors = 0;
  for (std::size_t i = 0; i < streams_.size(); ++i) {
    if (streams_[i].selectors <= best_selectors) continue;  // cannot beat the current winner
    if (stream_matches(i, q, client)) {
      best = &spec_.streams[i];
      best_selectors = streams_[i].selectors;
    }
  }
  return best;
}

std::optional<RuleSet::ExclusionHit> RuleSet::find_exclusion(const StreamSpec* stream,
                                                             std::string_view recipient) const {
  std::size_t s = spec_.streams.size();
  if (stream != nullptr) s = static_cast<std::size_t>(stream - spec_.streams.data());
  if (s >= exclusions_.size()) return std::nullopt;
  const auto& idx = exclusions_[s];
  if (recipient.size() >= 2 && recipient.front() == '<' && recipient.back() == '>') {
    recipient = recipient.substr(1, recipient.size() - 2);
  }
  const auto at = recipient.rfind('@');
  if (at == std::string_view::npos) return std::nullopt;
  if (!idx.addresses.empty()) {
    if (auto v = idx.addresses.find(recipient)) return ExclusionHit{&spec_.exclusions[*v], true};
  }
  if (auto v = idx.domains.find_covering(recipient.substr(at + 1))) {
    return ExclusionHit{&spec_.exclusions[*v], false};
  }
  return std::nullopt;
}

const OperatorSpec* RuleSet::operator_for_host(std::string_view mx_host) const {
  auto v = mx_suffixes_.find_covering(mx_host);
  return v ? &spec_.operators[*v] : nullptr;
}

const OperatorSpec* RuleSet::operator_for_mx(std::span<const MxRecord> records) const {
  if (records.empty()) return nullptr;
  std::uint16_t best = records.front().preference;
  for (const auto& r : records) best = std::min(best, r.preference);
  const OperatorSpec* found = nullptr;
  for (const auto& r : records) {
    if (r.preference != best) continue;
    const OperatorSpec* op = operator_for_host(r.host);
    if (op == nullptr || (found != nullptr && op != found)) return nullptr;
    found = op;
  }
  return found;
}

namespace {
template <class T>
const T* by_name(const std::vector<T>& v, std::string_view name) {
  for (const auto& x : v) {
    if (x.name == name) return &x;
  }
  return nullptr;
}
}  // namespace

const StreamSpec* RuleSet::stream(std::string_view name) const {
  return by_name(spec_.streams, name);
}
const RampSpec* RuleSet::ramp(std::string_view name) const { return by_name(spec_.ramps, name); }
const OperatorSpec* RuleSet::op(std::string_view name) const {
  return by_name(spec_.operators, name);
}

}  // namespace rampart::core
