// The compiled, immutable rules snapshot the daemons serve from: fast matchers built once from a
// validated RulesSpec. Readers share it through shared_ptr<const RuleSet> and swap it atomically
// on reload. Pure; no I/O; lookups never allocate.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "core/cidr_set.hpp"
#include "core/domain_table.hpp"
#include "core/result.hpp"
#include "core/rules.hpp"

namespace rampart::core {

// What Postfix tells us about a message's origin; the milter and policyd fill it from their own
// protocol (milter macros / policy attributes) and resolve the stream with the same function.
struct StreamQuery {
  std::optional<std::int64_t> port;  // {daemon_port} / server_port
  std::string_view client_addr;      // {client_addr} / client_address
  std::string_view sender;           // {mail_addr} / sender (envelope, may be empty: null sender)
  std::string_view sasl_user;        // {auth_authen} / sasl_username
};

struct MxRecord {
  std::uint16_t preference = 0;
  std::string_view host;
};

class RuleSet {
 public:
  // Validates (normalising `spec` in place) and builds every matcher; all or nothing. `classify`:
  // see core::validate (Structure for rules read back from the store).
  [[nodiscard]] static Result<std::shared_ptr<const RuleSet>> compile(
      RulesSpec spec, std::int64_t version = 0, ClassifyCheck classify = ClassifyCheck::Full);

  const RulesSpec& spec() const { return spec_; }
  std::int64_t version() const { return version_; }

  // The stream of a message: among streams whose every given selector matches (ports, clients,
  // senders, sasl_users; each a list where any entry may match), the one with the most selectors
  // wins, and on a tie the one defined first. nullptr when none matches.
  const StreamSpec* resolve_stream(const StreamQuery& q) const;

  struct ExclusionHit {
    const ExclusionSpec* rule = nullptr;  // the category; its action and status apply
    bool by_address = false;              // matched an exact address rather than a domain
  };
  // Exclusion that applies to `recipient` for mail in `stream` (nullptr = mail in no stream, to
  // which only exclusions with streams = ["*"] apply). Exact addresses win over domains; a domain
  // covers its subdomains; case and a trailing dot do not matter.
  std::optional<ExclusionHit> find_exclusion(const StreamSpec* stream,
                                             std::string_view recipient) const;

  // Operator whose MX suffix covers this host (most specific suffix wins), or nullptr.
  const OperatorSpec* operator_for_host(std::string_view mx_host) const;
  // Operator of a domain from its MX records: every most-preferred host must map to one and the
  // same operator; otherwise (unknown or mixed) nullptr.
  const OperatorSpec* operator_for_mx(std::span<const MxRecord> records) const;

  // Whether any stream selects on the server port (then a missing port is a configuration error).
  bool selects_on_ports() const { return selects_on_ports_; }

  const StreamSpec* stream(std::string_view name) const;
  const RampSpec* ramp(std::string_view name) const;
  const OperatorSpec* op(std::string_view name) const;

 private:
  RuleSet() = default;
  struct CompiledStream {
    CidrSet clients;
    DomainTable sender_domains;
    DomainTable sender_addresses;
    int selectors = 0;
  };
  struct ExclusionIndex {
    DomainTable domains;    // -> index into spec_.exclusions
    DomainTable addresses;  // -> index into spec_.exclusions
  };
  bool stream_matches(std::size_t i, const StreamQuery& q,
                      const std::optional<IpAddress>& client) const;

  RulesSpec spec_;
  std::int64_t version_ = 0;
  std::vector<CompiledStream> streams_;
  std::vector<ExclusionIndex> exclusions_;  // one per stream, then one for "no stream"
  DomainTable mx_suffixes_;                 // -> index into spec_.operators
  bool selects_on_ports_ = false;
};

}  // namespace rampart::core
