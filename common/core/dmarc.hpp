// The DMARC aggregate report as rampart keeps it (issue 6): RFC 7489 appendix C and the DMARCbis
// schema (urn:ietf:params:xml:ns:dmarc-2.0) map onto the same structs. Plain data shared by the
// parser (sidecar/dmarc), the store and the reports. Pure.
//
// Values are kept as the report gives them, trimmed; results (pass, fail, none, ...) and
// dispositions are lower-cased; unknown values are kept, never dropped. Empty = absent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rampart::core::dmarc {

// One <auth_results> entry: <dkim> or <spf>.
struct AuthResult {
  std::string method;  // "dkim" | "spf"
  std::string domain;
  std::string selector;  // dkim only
  std::string scope;     // spf only: "mfrom" | "helo"
  std::string result;    // lower case: pass, fail, none, neutral, temperror, permerror, ...
  std::string human_result;
  bool operator==(const AuthResult&) const = default;
};

struct Reason {
  std::string type;  // lower case: forwarded, sampled_out, trusted_forwarder, local_policy, ...
  std::string comment;
  bool operator==(const Reason&) const = default;
};

struct Record {
  std::string source_ip;  // as given (v4 or v6 text)
  std::int64_t count = 0;
  std::string disposition;  // policy_evaluated: none | quarantine | reject (lower case)
  std::string dkim;         // policy_evaluated dkim: pass | fail (aligned result)
  std::string spf;          // policy_evaluated spf: pass | fail (aligned result)
  std::vector<Reason> reasons;
  std::string header_from;
  std::string envelope_from;
  std::string envelope_to;
  std::vector<AuthResult> auth;
  // DMARC passes when policy-evaluated DKIM or SPF passes.
  bool dmarc_pass() const { return dkim == "pass" || spf == "pass"; }
  bool operator==(const Record&) const = default;
};

// <policy_published>. Optional numbers stay unset when absent.
struct Policy {
  std::string domain;
  std::string adkim, aspf;  // r | s
  std::string p, sp, np;    // none | quarantine | reject
  std::optional<std::int64_t> pct;
  std::string fo;
  std::string testing;           // DMARCbis <testing>: y | n
  std::string discovery_method;  // DMARCbis: psl | treewalk
  bool operator==(const Policy&) const = default;
};

struct Report {
  std::string version;    // <version> as given ("1.0", "2.0", "")
  bool dmarcbis = false;  // the DMARCbis namespace was declared
  std::string org_name;
  std::string email;
  std::string extra_contact_info;
  std::string report_id;
  std::int64_t begin = 0;  // <date_range>, unix seconds (UTC)
  std::int64_t end = 0;
  std::vector<std::string> errors;  // <report_metadata><error>
  Policy policy;
  std::vector<Record> records;

  std::int64_t messages() const {
    std::int64_t n = 0;
    for (const auto& r : records) n += r.count;
    return n;
  }
  std::int64_t pass_messages() const {
    std::int64_t n = 0;
    for (const auto& r : records) n += r.dmarc_pass() ? r.count : 0;
    return n;
  }
  bool operator==(const Report&) const = default;
};

}  // namespace rampart::core::dmarc
