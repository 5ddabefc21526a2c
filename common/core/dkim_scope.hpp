// Predicts whether OpenDKIM 2.11 (the milter before us in smtpd_milters) will sign a message, and
// says why not: opendkim.conf and the tables it names are parsed here, the decision is replayed
// per message (FIELD-NOTES incident 5). Pure: no file, socket or clock; file contents arrive
// through the ReadFile callback. Semantics were checked against opendkim.conf(5), opendkim(8)
// and the real opendkim 2.11.0~beta2 under miltertest; each deviation is noted in dkim_scope.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace rampart::core::dkim {

// Returns a file's whole contents, or Errc::Config when it cannot be read (the adapter's job).
using ReadFile = std::function<Result<std::string>(const std::string& path)>;

// An OpenDKIM "data set" (opendkim(8) DATA SETS) that rampart can evaluate.
enum class DatasetKind : std::uint8_t {
  List,    // "a,b=c" or "csl:a,b=c": elements split on ',', key=value split at the first '='
  File,    // "/path" or "file:/path": a line per entry, key and value split at whitespace
  Refile,  // "refile:/path": like File, but keys are patterns where '*' matches any text
};

struct DatasetEntry {
  std::string key;    // as written (a pattern for Refile)
  std::string value;  // empty when none
  bool has_value = false;
  std::size_t line = 0;  // 1-based line in the file; 0 for List
};

class Dataset {
 public:
  DatasetKind kind = DatasetKind::List;
  std::string spec;   // the value as written in opendkim.conf, for messages
  std::string path;   // the file read (File, Refile), after BaseDirectory
  bool icase = true;  // OpenDKIM looks some sets up case-insensitively, others not (see .cpp)
  std::vector<DatasetEntry> entries;

  // The first entry whose key equals `key` (List, File) or whose pattern matches it (Refile).
  const DatasetEntry* find(std::string_view key) const;
  // Builds the exact-match index; parse_config calls it once the entries are in place.
  void index();

 private:
  std::unordered_map<std::string, std::size_t> index_;  // folded key -> first entry
};

// InternalHosts or PeerList: hosts, ".domains", addresses, networks, each maybe "!"-negated.
struct HostList {
  Dataset set;
  std::vector<std::string> hostnames;  // entries only a client name can match, for reasons
  // Entries that can never match anything, each with why (e.g. "172.18.0.5/16": host bits set).
  std::vector<std::pair<std::string, std::string>> dead;
  // The "/bits" suffixes entries use, longest first: the network walk only probes these
  // (all of 0..128 for Refile, whose patterns could match any).
  std::vector<unsigned> prefix_lengths;
};

struct Config {
  bool sign = true;    // Mode has 's' (opendkim.conf(5) Mode: default "sv")
  bool verify = true;  // Mode has 'v'
  std::string mode = "sv";
  // nullopt: InternalHosts not set, OpenDKIM's built-in 127.0.0.1 and ::1 apply.
  std::optional<HostList> internal_hosts;
  std::optional<HostList> peer_list;
  std::optional<Dataset> macro_list;  // key: macro name; value: "v1|v2" (case-sensitive)
  std::optional<Dataset> mta;         // {daemon_name} values whose mail is signed
  std::optional<Dataset> domain;      // single-key mode: Domain + Selector + KeyFile
  std::string selector;
  // Never read, nor KeyTable key files: a missing or unsafe key (RequireSafeKeys) makes OpenDKIM
  // refuse to start or tempfail each message, and rampart does not predict that.
  std::string key_file;
  bool sub_domains = false;
  std::optional<Dataset> key_table;      // name -> "domain:selector:key"
  std::optional<Dataset> signing_table;  // sender -> "keyname[:signer]"
  std::optional<Dataset> exempt_domains;
  std::optional<Dataset> dont_sign_mail_to;
  // The headers OpenDKIM takes the sender from, first present wins: the adapter must extract
  // SigningRequest::from_address from the first of these the message has.
  std::vector<std::string> sender_headers{"From"};
  std::string sender_macro;  // SenderMacro: when that macro is set, its value is the sender
  std::string base_directory;
  std::vector<std::string> files;  // every file read, conf itself excluded, first-read order
  // Facts an operator should hear about (unknown keys, entries that match nothing, key names
  // the SigningTable uses but the KeyTable lacks). Not errors: OpenDKIM starts with them.
  std::vector<std::string> warnings;
};

// Parses opendkim.conf text (its path is for messages and Include) and every file it names.
// Errors (Errc::Config, naming the key or file): what OpenDKIM itself refuses at start (a key
// without a value, a bad Mode or Boolean, an unknown dataset type such as an unbracketed IPv6
// value, a missing file, KeyTable without SigningTable ...) and what rampart cannot predict
// (db:, dsn:, ldap:, lua:, memcache:, erlang:, mdb: datasets, SetupPolicyScript, refile
// patterns using regex operators other than '*').
[[nodiscard]] Result<Config> parse_config(std::string_view conf_text, std::string_view conf_path,
                                          const ReadFile& read);

// Every file parse_config read (conf itself excluded), so the milter can re-read on change.
inline const std::vector<std::string>& files_read(const Config& cfg) { return cfg.files; }

using Macro = std::pair<std::string_view, std::string_view>;

struct SigningRequest {
  std::string_view client_addr;   // "172.18.0.5", "IPv6:2001:db8::1"; empty/"unknown": none,
                                  // which OpenDKIM treats as 127.0.0.1 (verified)
  std::string_view client_name;   // hostname the MTA gave the milter at connect; empty: unknown
  bool authenticated = false;     // {auth_authen} (or {auth_type}) non-empty
  std::string_view from_address;  // sender address from the first of Config::sender_headers
  std::span<const Macro> macros;  // milter macros seen: name without braces -> value
  std::span<const std::string_view> recipients;  // envelope recipients, for DontSignMailTo
};

enum class Outcome : std::uint8_t {
  Signs,              // OpenDKIM adds a DKIM-Signature with `domain` and `selector`
  VerifyOnlyMode,     // Mode lacks 's'
  PeerListed,         // client in PeerList: OpenDKIM ignores the connection
  BadClient,          // client address unusable: nothing can be predicted, so "unsigned"
  NotTrusted,         // not internal, not authenticated, no MacroList or MTA match
  ExemptDomain,       // From domain in ExemptDomains: message ignored
  DontSignRecipient,  // a recipient in DontSignMailTo
  NoSender,           // no sender address or no domain in it
  NoKey,              // no Domain / SigningTable match for the sender
  BrokenKey,  // SigningTable names a missing or malformed KeyTable entry: OpenDKIM tempfails
};

struct Prediction {
  bool will_sign = false;
  Outcome outcome = Outcome::NoKey;
  // When !will_sign: lower-case, fits after "would leave unsigned: ", e.g.
  // "client 172.18.0.5 not in OpenDKIM InternalHosts".
  std::string reason;
  std::string domain;    // d= it will sign with (when will_sign)
  std::string selector;  // s=
  std::string key_name;  // KeyTable entry used (empty in Domain/KeyFile mode)
};

// Deterministic; never fails (an unusable request is a !will_sign prediction with a reason).
Prediction predict(const Config& cfg, const SigningRequest& req);

}  // namespace rampart::core::dkim
