// OpenDKIM sign/verify prediction: see dkim_scope.hpp. Pure (files come through ReadFile;
// inet_pton/inet_ntop are string functions). "Verified" below means run against the real
// opendkim 2.11.0~beta2 under miltertest on loopback, one message per case.
#include "core/dkim_scope.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <functional>
#include <map>

#include <fmt/format.h>

#include "core/cidr_set.hpp"
#include "core/text.hpp"

namespace rampart::core::dkim {

namespace {

constexpr std::string_view kSpace = " \t\r\n\f\v";

std::string_view trim(std::string_view s) {
  const auto b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kSpace) - b + 1);
}

bool has_space(std::string_view s) { return s.find_first_of(kSpace) != std::string_view::npos; }

std::string fold(std::string_view s, bool icase) { return icase ? ascii_lower(s) : std::string(s); }

// Calls f(line_number, line) for each line, '#' comments cut and whitespace trimmed, blank
// lines skipped. opendkim.conf(5): "Lines containing a hash ... are truncated at the hash";
// opendkim(8) DATA SETS a): the same for flat files.
template <class F>
void for_each_line(std::string_view text, F&& f) {
  std::size_t n = 0;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    auto line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    ++n;
    if (const auto hash = line.find('#'); hash != std::string_view::npos)
      line = line.substr(0, hash);
    line = trim(line);
    if (!line.empty()) f(n, line);
  }
}

// Splits "key<whitespace>value" (flat files, opendkim.conf lines).
std::pair<std::string_view, std::string_view> split_ws(std::string_view line) {
  const auto sp = line.find_first_of(kSpace);
  if (sp == std::string_view::npos) return {line, {}};
  return {line.substr(0, sp), trim(line.substr(sp))};
}

// The parameter names opendkim.conf(5) documents. Anything else is kept as a warning: OpenDKIM
// refuses to start on an unrecognised parameter (verified: "configuration error at line N:
// unrecognized parameter"), but which ones a build recognises varies, and refusing a config
// that the running OpenDKIM accepts would be worse than a warning.
// clang-format off
constexpr std::array<std::string_view, 135> kKnownKeys = {
    "allowsha1only", "alwaysaddarheader", "authservid", "authservidwithjobid", "autorestart",
    "autorestartcount", "autorestartrate", "background", "basedirectory", "bodylengthdb",
    "boguskey", "captureunknownerrors", "canonicalization", "changerootdirectory", "clockdrift",
    "diagnostics", "diagnosticdirectory", "disablecryptoinit", "dnsconnect", "dnstimeout", "domain",
    "domainkeyscompat", "dontsignmailto", "enablecoredumps", "exemptdomains", "externalignorelist",
    "finalpolicyscript", "fixcrlf", "identityheader", "identityheaderremove", "ignoremalformedmail",
    "include", "internalhosts", "keepauthresults", "keeptemporaryfiles", "keyfile", "keytable",
    "ldapauthmechanism", "ldapauthname", "ldapauthrealm", "ldapauthuser", "ldapbindpassword",
    "ldapbinduser", "ldapdisablecache", "ldapkeepaliveidle", "ldapkeepaliveinterval",
    "ldapkeepaliveprobes", "ldaptimeout", "ldapusetls", "logresults", "logwhy", "macrolist",
    "maximumheaders", "maximumsignaturestoverify", "maximumsignedbytes", "milterdebug", "minimum",
    "minimumkeybits", "mode", "mta", "mtacommand", "multiplesignatures", "mustbesigned",
    "nameservers", "noheaderb", "omitheaders", "on-badsignature", "on-default", "on-dnserror",
    "on-internalerror", "on-keynotfound", "on-nosignature", "on-security", "on-signatureerror",
    "oversignheaders", "peerlist", "pidfile", "popdbfile", "quarantine", "querycache",
    "redirectfailuresto", "removearall", "removearfrom", "removeoldsignatures", "replaceheaders",
    "replacerules", "reportaddress", "reportbccaddress", "requestreports", "requiredheaders",
    "requiresafekeys", "resignall", "resignmailto", "resolverconfiguration", "resolvertracing",
    "screenpolicyscript", "selectcanonicalizationheader", "selector", "senderheaders",
    "sendermacro", "sendreports", "setuppolicyscript", "signaturealgorithm", "signaturettl",
    "signheaders", "signingtable", "smtpuri", "socket", "softstart", "softwareheader", "statistics",
    "statisticsname", "statisticspolicyscript", "statisticsprefix", "strictheaders",
    "stricttestmode", "subdomains", "syslog", "syslogfacility", "syslogname", "syslogsuccess",
    "temporarydirectory", "testdnsdata", "testpublickeys", "trustanchorfile", "trustsignaturesfrom",
    "umask", "unprotectedkey", "userid", "vbr-certifiers", "vbr-purgefields",
    "vbr-trustedcertifiers", "vbr-trustedcertifiersonly", "vbr-type", "weaksyntaxchecks",
};
// clang-format on

bool known_key(std::string_view lower) {
  return std::find(kKnownKeys.begin(), kKnownKeys.end(), lower) != kKnownKeys.end();
}

struct Setting {
  std::string key;    // as written
  std::string value;  // trimmed, comment cut
  std::string where;  // "path:line"
};

// opendkim.conf(5) Include: "Nesting is allowed to a maximum of five levels" (verified: an
// Include loop fails with "nesting too deep").
constexpr int kMaxIncludeDepth = 5;
// Each of five levels may Include many files: bound the total so a fan-out cannot stall a
// reload. Real configurations read a handful.
constexpr int kMaxReads = 100;

struct Reader {
  const ReadFile& read;
  std::map<std::string, Setting> settings;  // lower-case key -> last setting (last one wins,
                                            // verified with two Mode and two InternalHosts lines)
  std::vector<std::string> files;
  std::vector<std::string> warnings;
  int reads = 0;

  void note_file(const std::string& path) {
    if (std::find(files.begin(), files.end(), path) == files.end()) files.push_back(path);
  }

  Result<std::string> read_file(std::string_view key, const std::string& path) {
    note_file(path);  // listed even when unreadable: the milter re-reads once it appears
    if (++reads > kMaxReads)
      return fail(Errc::Config, fmt::format("{}: more than {} files read", key, kMaxReads));
    if (!read) return fail(Errc::Config, fmt::format("{}: cannot read {:?}: no reader", key, path));
    auto text = read(path);
    if (!text)
      return fail(Errc::Config,
                  fmt::format("{}: cannot read {:?}: {}", key, path, text.error().what));
    return text;
  }

  Result<void> parse(std::string_view text, std::string_view path, int depth) {
    std::optional<Error> err;
    for_each_line(text, [&](std::size_t n, std::string_view line) {
      if (err) return;
      const auto [key, value] = split_ws(line);
      const auto where = fmt::format("{}:{}", path, n);
      const auto lower = ascii_lower(key);
      if (value.empty()) {
        // Verified: "Mode" or "InternalHosts" alone -> "required value missing"; a lone
        // unknown word -> "unrecognized parameter". Either way OpenDKIM does not start.
        err = Error{Errc::Config,
                    fmt::format("{}: {} has no value (OpenDKIM refuses to start)", where, key)};
        return;
      }
      if (lower == "include") {
        if (depth >= kMaxIncludeDepth) {
          err = Error{Errc::Config, fmt::format("{}: Include nesting too deep (OpenDKIM allows {} "
                                                "levels)",
                                                where, kMaxIncludeDepth)};
          return;
        }
        const std::string inc(value);
        if (inc.front() != '/') {
          err = Error{Errc::Config,
                      fmt::format("{}: Include {:?} is relative; rampart cannot know OpenDKIM's "
                                  "working directory",
                                  where, inc)};
          return;
        }
        auto body = read_file("Include", inc);
        if (!body) {
          err = Error{Errc::Config, fmt::format("{}: {}", where, body.error().what)};
          return;
        }
        if (auto r = parse(*body, inc, depth + 1); !r) err = r.error();
        return;
      }
      if (!known_key(lower)) {
        warnings.push_back(
            fmt::format("{}: unknown key {:?} ignored (OpenDKIM itself refuses to "
                        "start on an unrecognized parameter)",
                        where, key));
      }
      settings[lower] = Setting{std::string(key), std::string(value), where};
    });
    if (err) return tl::unexpected(*err);
    return {};
  }

  const Setting* get(std::string_view lower) const {
    const auto it = settings.find(std::string(lower));
    return it == settings.end() ? nullptr : &it->second;
  }
};

// ---- Refile patterns ------------------------------------------------------------------------

// opendkim(8) DATA SETS b): "simple wildcard patterns, matching all text except that the
// asterisk is considered a wildcard". Verified otherwise: OpenDKIM turns the pattern into a
// case-insensitive anchored POSIX regex, escaping only '.', '+' and '\' ("a?c" matched "ac" and
// "c", "[xy]" a class, "(p|q)" an alternation, "u{2}" "uu", "^"/"$" anchors). rampart evaluates
// '*' and literal text only, and refuses patterns using those regex operators instead of
// guessing at a POSIX regex engine.
constexpr std::string_view kRegexOperators = "?[](){}|^$";

bool glob_match(std::string_view pat, std::string_view text) {
  // Iterative wildcard match with one backtrack point: O(len(pat) * len(text)) worst case.
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pat.size() && ascii_lower(pat[p]) == ascii_lower(text[t])) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

}  // namespace

// ---- Dataset --------------------------------------------------------------------------------

void Dataset::index() {
  index_.clear();
  if (kind == DatasetKind::Refile) return;
  for (std::size_t i = 0; i < entries.size(); ++i) index_.emplace(fold(entries[i].key, icase), i);
}

const DatasetEntry* Dataset::find(std::string_view key) const {
  if (kind == DatasetKind::Refile) {
    // opendkim.conf(5) SigningTable: "Entries are checked in the order in which they appear".
    for (const auto& e : entries) {
      if (glob_match(e.key, key)) return &e;
    }
    return nullptr;
  }
  const auto it = index_.find(fold(key, icase));
  return it == index_.end() ? nullptr : &entries[it->second];
}

namespace {

// ---- Dataset specifications -----------------------------------------------------------------

struct DatasetRules {
  bool icase = true;
  bool allow_refile = true;
};

// How OpenDKIM picks a data set's type from its specification (opendkim(8) DATA SETS), checked
// against the real thing:
// - a ':' with no ',' before it makes the text before it a type name, case-insensitive
//   ("FILE:", "CSL:" work). So an unprefixed IPv6 value ("::1", "2001:db8::/32") or a path
//   containing ':' is an "Unknown database type" and OpenDKIM does not start, while
//   "127.0.0.1,::1" is a list;
// - else a value ending in ".db" is a Sleepycat database, one starting with '/' a flat file;
// - else a comma-separated list. A relative name such as "hosts.txt" is therefore a one-element
//   list (the host name "hosts.txt"), not a file: verified.
Result<Dataset> load_dataset(Reader& rd, std::string_view key, const std::string& spec,
                             const std::string& base_dir, DatasetRules rules) {
  Dataset ds;
  ds.spec = spec;
  ds.icase = rules.icase;
  std::string_view rest = spec;
  const auto colon = rest.find(':');
  const auto comma = rest.find(',');
  bool file_like = false;
  if (colon != std::string_view::npos && (comma == std::string_view::npos || colon < comma)) {
    const auto type = ascii_lower(rest.substr(0, colon));
    rest.remove_prefix(colon + 1);
    if (type == "csl") {
      ds.kind = DatasetKind::List;
    } else if (type == "file") {
      ds.kind = DatasetKind::File;
      file_like = true;
    } else if (type == "refile") {
      ds.kind = DatasetKind::Refile;
      file_like = true;
    } else if (type == "db" || type == "dsn" || type == "ldap" || type == "ldaps" ||
               type == "ldapi" || type == "lua" || type == "memcache" || type == "erlang" ||
               type == "mdb") {
      return fail(
          Errc::Config,
          fmt::format("{}: dataset type {}: is not supported by rampart's prediction", key, type));
    } else {
      return fail(Errc::Config,
                  fmt::format("{}: unknown dataset type {:?} in {:?} (OpenDKIM refuses to start: "
                              "a ':' before any ',' names a type; put IPv6 entries in a file or "
                              "after csl:)",
                              key, std::string(spec.substr(0, colon + 1)), spec));
    }
  } else if (rest.size() >= 3 && iequals(rest.substr(rest.size() - 3), ".db")) {
    return fail(Errc::Config,
                fmt::format("{}: dataset type db: ({:?}) is not supported by rampart's prediction",
                            key, spec));
  } else if (!rest.empty() && rest.front() == '/') {
    ds.kind = DatasetKind::File;
    file_like = true;
  }
  if (ds.kind == DatasetKind::Refile && !rules.allow_refile) {
    // Verified: "refile:... invalid data set type for MacroList"; opendkim.conf(5) MacroList:
    // "This data set must be of type file or csl".
    return fail(Errc::Config, fmt::format("{}: must be a file or csl data set, not refile "
                                          "(OpenDKIM refuses to start)",
                                          key));
  }

  if (!file_like) {
    // opendkim(8) DATA SETS m): elements are values or "x=y" pairs. Verified: elements are
    // trimmed ("127.0.0.1 ,x" matches 127.0.0.1), empty ones skipped, and only '=' splits a
    // pair ("csl:daemon_name submission" is one key; README.opendkim's "csl:key1 value1" is
    // wrong for 2.11).
    while (!rest.empty()) {
      const auto c = rest.find(',');
      const auto elem = trim(rest.substr(0, c));
      rest = c == std::string_view::npos ? std::string_view{} : rest.substr(c + 1);
      if (elem.empty()) continue;
      DatasetEntry e;
      if (const auto eq = elem.find('='); eq != std::string_view::npos) {
        e.key = std::string(trim(elem.substr(0, eq)));
        e.value = std::string(trim(elem.substr(eq + 1)));
        e.has_value = true;
      } else {
        e.key = std::string(elem);
      }
      ds.entries.push_back(std::move(e));
    }
    ds.index();
    return ds;
  }

  std::string path(rest);
  if (path.empty()) return fail(Errc::Config, fmt::format("{}: {:?} names no file", key, spec));
  if (path.front() != '/') {
    // Verified: OpenDKIM opens relative names from BaseDirectory, else from its working
    // directory, which rampart cannot know.
    if (base_dir.empty()) {
      return fail(Errc::Config,
                  fmt::format("{}: {:?} is a relative path and BaseDirectory is not set; rampart "
                              "cannot know OpenDKIM's working directory",
                              key, spec));
    }
    path = base_dir + (base_dir.back() == '/' ? "" : "/") + path;
  }
  ds.path = path;
  RAMPART_TRY(body, rd.read_file(key, path));
  std::optional<Error> err;
  for_each_line(body, [&](std::size_t n, std::string_view line) {
    const auto [k, v] = split_ws(line);
    if (ds.kind == DatasetKind::Refile && !err) {
      if (const auto op = k.find_first_of(kRegexOperators); op != std::string_view::npos) {
        err = Error{Errc::Config,
                    fmt::format("{}: {}:{}: pattern {:?} uses {:?}, which OpenDKIM treats as a "
                                "regular expression operator; rampart's prediction supports only "
                                "'*' wildcards",
                                key, path, n, std::string(k), std::string(1, k[op]))};
      }
    }
    ds.entries.push_back(DatasetEntry{std::string(k), std::string(v), !v.empty(), n});
  });
  if (err) return tl::unexpected(*err);
  ds.index();
  return ds;
}

// ---- Host lists (InternalHosts, PeerList) -----------------------------------------------------

// Parses a client address the way OpenDKIM sees it: v4-mapped IPv6 stays IPv6 (verified:
// "::ffff:172.18.0.5" is not matched by 172.18.0.0/16, but is by "::ffff:172.18.0.5").
// Postfix itself hands milters plain IPv4 for v4-mapped peers, so this only matters when an
// adapter passes the mapped text through.
std::optional<IpAddress> parse_ip_keep_mapped(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']')
    text = text.substr(1, text.size() - 2);
  if (text.size() > 5 && iequals(text.substr(0, 5), "ipv6:")) text.remove_prefix(5);
  auto a = IpAddress::parse(text);
  if (!a) return std::nullopt;
  if (!a->v6 && text.find(':') != std::string_view::npos) {  // IpAddress::parse unmapped it
    IpAddress m;
    m.v6 = true;
    m.bytes[10] = 0xff;
    m.bytes[11] = 0xff;
    std::copy_n(a->bytes.begin(), 4, m.bytes.begin() + 12);
    return m;
  }
  return a;
}

IpAddress mask(IpAddress a, unsigned bits) {
  const unsigned max = a.v6 ? 128 : 32;
  for (unsigned bit = bits; bit < max; ++bit) {
    a.bytes[bit / 8] = static_cast<std::uint8_t>(a.bytes[bit / 8] & ~(0x80u >> (bit % 8)));
  }
  return a;
}

// Why an InternalHosts/PeerList entry can never match, or nullopt when it can (or may match a
// client name). OpenDKIM matches these sets as text (verified): it looks up the client's
// canonical address ("127.0.0.1", "2001:db8::5", also "[...]") and then each
// "<canonical network>/<bits>" from the longest prefix down, so "127.1", "010.1.1.1",
// "2001:0db8::/32", "10.0.0.0/08", "172.18/16" and "172.18.0.5/16" match nothing.
// (opendkim.conf(5) NOTES point at inet_addr(3) for CIDRs; that is not what 2.11 does.)
std::optional<std::string> dead_entry(std::string_view e, bool& hostname) {
  hostname = false;
  if (e.empty()) return "empty";
  if (has_space(e)) return "contains whitespace (OpenDKIM lists are comma-separated)";
  const auto slash = e.find('/');
  auto addr_text = e.substr(0, slash);
  if (addr_text.size() >= 2 && addr_text.front() == '[' && addr_text.back() == ']')
    addr_text = addr_text.substr(1, addr_text.size() - 2);
  const bool looks_numeric =
      !addr_text.empty() && (addr_text.find(':') != std::string_view::npos ||
                             addr_text.find_first_not_of("0123456789.") == std::string_view::npos);
  const auto addr = parse_ip_keep_mapped(addr_text);
  if (!addr || addr_text.find_first_of("[]") != std::string_view::npos) {
    if (slash != std::string_view::npos || looks_numeric)
      return "not an address or network in the canonical form OpenDKIM compares";
    hostname = true;
    return std::nullopt;
  }
  const auto canon = addr->str();
  if (ascii_lower(addr_text) != canon)
    return fmt::format("not in canonical form (OpenDKIM compares text: write {})", canon);
  if (slash == std::string_view::npos) return std::nullopt;
  const auto p = e.substr(slash + 1);
  const unsigned max = addr->v6 ? 128 : 32;
  unsigned bits = 0;
  const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), bits);
  if (p.empty() || ec != std::errc{} || end != p.data() + p.size() || bits > max ||
      std::to_string(bits) != p)
    return "bad prefix length (OpenDKIM compares text: plain decimal bits)";
  const auto net = mask(*addr, bits);
  if (!(net == *addr)) return fmt::format("host bits set (write {}/{})", net.str(), bits);
  return std::nullopt;
}

Result<HostList> load_hosts(Reader& rd, std::string_view key, const std::string& spec,
                            const std::string& base_dir) {
  RAMPART_TRY(ds, load_dataset(rd, key, spec, base_dir, DatasetRules{}));
  HostList hl{std::move(ds), {}, {}, {}};
  if (hl.set.kind == DatasetKind::Refile) {  // patterns: no per-entry analysis
    for (unsigned bits = 129; bits-- > 0;) hl.prefix_lengths.push_back(bits);
    return hl;
  }
  for (const auto& e : hl.set.entries) {
    if (const auto slash = e.key.rfind('/'); slash != std::string::npos) {
      const auto p = std::string_view(e.key).substr(slash + 1);
      unsigned bits = 0;
      const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), bits);
      if (ec == std::errc{} && end == p.data() + p.size() && bits <= 128)
        hl.prefix_lengths.push_back(bits);
    }
    std::string_view k = e.key;
    if (!k.empty() && k.front() == '!') k.remove_prefix(1);
    bool hostname = false;
    if (auto why = dead_entry(k, hostname)) {
      hl.dead.emplace_back(e.key, *why);
      rd.warnings.push_back(fmt::format("{}: entry {:?} matches nothing: {}", key, e.key, *why));
    } else if (hostname) {
      hl.hostnames.push_back(e.key);
    }
  }
  std::sort(hl.prefix_lengths.begin(), hl.prefix_lengths.end(), std::greater<>());
  hl.prefix_lengths.erase(std::unique(hl.prefix_lengths.begin(), hl.prefix_lengths.end()),
                          hl.prefix_lengths.end());
  return hl;
}

const HostList& default_internal_hosts() {
  // POSTFIX-NOTES: the built-in default is 127.0.0.1 and ::1 (verified: ::1 is signed with no
  // InternalHosts line), although opendkim.conf(5) only mentions 127.0.0.1.
  static const HostList kDefault = [] {
    HostList hl;
    hl.set.spec = "127.0.0.1,::1 (built-in default)";
    hl.set.entries = {DatasetEntry{"127.0.0.1", "", false, 0}, DatasetEntry{"::1", "", false, 0}};
    hl.set.index();
    return hl;
  }();
  return kDefault;
}

enum class HostHit : std::uint8_t { None, Match, Excluded };

struct HostResult {
  HostHit hit = HostHit::None;
  std::string entry;  // the entry that decided
  bool by_name = false;
};

// opendkim.conf(5) PeerList: "Host and domain names are matched first, then the IP ... More
// precise entries are preferred over less precise ones". Verified details:
// - the client name, then each ".parent" suffix, is looked up; a plain name matches itself only,
//   ".example.net" its subdomains only; case-insensitive;
// - a "!" name entry only ends the name stage: the address is still checked
//   ("!mx.example.net,192.0.2.0/24" signs mx.example.net [192.0.2.1]);
// - then the address, then networks from /32 (/128) down to /0; at each step a "!" entry wins
//   over a plain one, and the first step with an entry decides ("!127.0.0.1/32,127.0.0.1"
//   signs 127.0.0.1; "127.0.0.1/32,!127.0.0.1" does not).
HostResult match_hosts(const HostList& hosts, const IpAddress& ip, std::string_view name) {
  const Dataset& set = hosts.set;
  auto probe = [&](const std::string& q, HostResult& out) {
    if (const auto* e = set.find("!" + q)) {
      out = {HostHit::Excluded, e->key, false};
      return true;
    }
    if (const auto* e = set.find(q)) {
      out = {HostHit::Match, e->key, false};
      return true;
    }
    return false;
  };
  // Address forms: plain and bracketed ("[192.0.2.1]", "[2001:db8::]/32"), both checked
  // (opendkim.conf(5) PeerList, verified).
  auto probe_addr = [&](const std::string& a, const std::string& suffix, HostResult& out) {
    const auto plain = a + suffix;
    const auto bracketed = "[" + a + "]" + suffix;
    for (const auto* q : {&plain, &bracketed}) {
      if (const auto* e = set.find("!" + *q)) {
        out = {HostHit::Excluded, e->key, false};
        return true;
      }
    }
    for (const auto* q : {&plain, &bracketed}) {
      if (const auto* e = set.find(*q)) {
        out = {HostHit::Match, e->key, false};
        return true;
      }
    }
    return false;
  };

  HostResult r;
  if (!name.empty()) {
    const auto host = ascii_lower(name);
    std::string_view rest = host;
    while (!rest.empty()) {
      const std::string q(rest);
      HostResult hr;
      if (probe(q, hr)) {
        if (hr.hit == HostHit::Match) {
          hr.by_name = true;
          return hr;
        }
        break;  // a negated name: fall through to the address
      }
      const auto dot = rest.find('.', 1);  // from 1: strictly shorter each round
      if (dot == std::string_view::npos) break;
      rest = rest.substr(dot);  // ".example.net"
    }
  }
  const auto text = ip.str();
  if (probe_addr(text, "", r)) return r;
  const unsigned max = ip.v6 ? 128 : 32;
  for (const unsigned bits : hosts.prefix_lengths) {  // longest first
    if (bits > max) continue;
    if (probe_addr(mask(ip, bits).str(), "/" + std::to_string(bits), r)) return r;
  }
  return r;
}

std::string join(const std::vector<std::string>& v, std::string_view sep = ", ") {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

// opendkim.conf(5): Boolean values look at the first byte only (verified: "Yes please" is true,
// "maybe" fails with "illegal value").
Result<bool> parse_bool(const Setting& s) {
  switch (s.value.front()) {
    case 'T':
    case 't':
    case 'Y':
    case 'y':
    case '1': return true;
    case 'F':
    case 'f':
    case 'N':
    case 'n':
    case '0': return false;
    default: break;
  }
  return fail(Errc::Config, fmt::format("{}: {} {:?}: not a Boolean (OpenDKIM refuses to start)",
                                        s.where, s.key, s.value));
}

std::string_view strip_angle(std::string_view s) {
  s = trim(s);
  if (s.size() >= 2 && s.front() == '<' && s.back() == '>') s = trim(s.substr(1, s.size() - 2));
  return s;
}

std::string_view strip_braces(std::string_view s) {
  if (s.size() >= 2 && s.front() == '{' && s.back() == '}') s = s.substr(1, s.size() - 2);
  return s;
}

const std::string_view* find_macro(std::span<const Macro> macros, std::string_view name) {
  for (const auto& m : macros) {
    if (strip_braces(m.first) == name) return &m.second;
  }
  return nullptr;
}

// KeyTable value "domain:selector:key" (opendkim.conf(5) KeyTable). Verified: a missing field,
// or an empty domain or selector, makes OpenDKIM tempfail each message that selects the key.
struct KeySpec {
  std::string domain, selector;
};
std::optional<KeySpec> parse_key(std::string_view v) {
  const auto c1 = v.find(':');
  if (c1 == std::string_view::npos) return std::nullopt;
  const auto c2 = v.find(':', c1 + 1);
  if (c2 == std::string_view::npos) return std::nullopt;
  KeySpec k{std::string(v.substr(0, c1)), std::string(v.substr(c1 + 1, c2 - c1 - 1))};
  if (k.domain.empty() || k.selector.empty() || c2 + 1 >= v.size()) return std::nullopt;
  return k;
}

}  // namespace

// ---- parse_config ---------------------------------------------------------------------------

Result<Config> parse_config(std::string_view conf_text, std::string_view conf_path,
                            const ReadFile& read) {
  Reader rd{read, {}, {}, {}, 0};
  if (auto r = rd.parse(conf_text, conf_path, 0); !r) return tl::unexpected(r.error());

  Config cfg;
  if (const auto* s = rd.get("setuppolicyscript")) {
    return fail(Errc::Config, fmt::format("{}: SetupPolicyScript: a Lua script decides what to "
                                          "sign; rampart cannot predict it",
                                          s->where));
  }
  if (const auto* s = rd.get("basedirectory")) cfg.base_directory = s->value;
  if (const auto* s = rd.get("mode")) {
    // opendkim.conf(5) Mode: "Valid modes are s (signer) and v (verifier). The default is sv".
    // Verified: any other letter, "S" included, stops OpenDKIM with "unknown mode".
    for (char c : s->value) {
      if (c != 's' && c != 'v') {
        return fail(Errc::Config,
                    fmt::format("{}: Mode {:?}: unknown mode {:?} (OpenDKIM refuses to start)",
                                s->where, s->value, std::string(1, c)));
      }
    }
    cfg.mode = s->value;
    cfg.sign = s->value.find('s') != std::string::npos;
    cfg.verify = s->value.find('v') != std::string::npos;
  }
  if (const auto* s = rd.get("subdomains")) {
    RAMPART_TRY(b, parse_bool(*s));
    cfg.sub_domains = b;
  }
  if (const auto* s = rd.get("selector")) cfg.selector = s->value;
  if (const auto* s = rd.get("keyfile")) cfg.key_file = s->value;
  // Verified: OpenDKIM asks libmilter for the SenderMacro name as written (no braces added,
  // unlike MacroList). Request macro names arrive without braces, so compare without them.
  if (const auto* s = rd.get("sendermacro")) cfg.sender_macro = std::string(strip_braces(s->value));

  const auto& base = cfg.base_directory;
  auto load = [&](std::string_view lower, std::string_view name, DatasetRules rules,
                  std::optional<Dataset>& out) -> Result<void> {
    const auto* s = rd.get(lower);
    if (s == nullptr) return {};
    auto ds = load_dataset(rd, name, s->value, base, rules);
    if (!ds) return tl::unexpected(ds.error());
    out = std::move(*ds);
    return {};
  };
  auto load_host_list = [&](std::string_view lower, std::string_view name,
                            std::optional<HostList>& out) -> Result<void> {
    const auto* s = rd.get(lower);
    if (s == nullptr) return {};
    auto hl = load_hosts(rd, name, s->value, base);
    if (!hl) return tl::unexpected(hl.error());
    out = std::move(*hl);
    return {};
  };

  // Case folding per set, verified: host lists, Domain, SigningTable, ExemptDomains and
  // DontSignMailTo ignore case; KeyTable names ("kup" does not find "KUP": tempfail), MTA names
  // and MacroList values (opendkim.conf(5): "matching is case-sensitive") do not.
  constexpr DatasetRules kIcase{true, true};
  constexpr DatasetRules kExact{false, true};
  if (auto r = load_host_list("internalhosts", "InternalHosts", cfg.internal_hosts); !r)
    return tl::unexpected(r.error());
  if (auto r = load_host_list("peerlist", "PeerList", cfg.peer_list); !r)
    return tl::unexpected(r.error());
  if (auto r = load("macrolist", "MacroList", DatasetRules{false, false}, cfg.macro_list); !r)
    return tl::unexpected(r.error());
  if (auto r = load("mta", "MTA", kExact, cfg.mta); !r) return tl::unexpected(r.error());
  if (auto r = load("domain", "Domain", kIcase, cfg.domain); !r) return tl::unexpected(r.error());
  if (auto r = load("keytable", "KeyTable", kExact, cfg.key_table); !r)
    return tl::unexpected(r.error());
  if (auto r = load("signingtable", "SigningTable", kIcase, cfg.signing_table); !r)
    return tl::unexpected(r.error());
  if (auto r = load("exemptdomains", "ExemptDomains", kIcase, cfg.exempt_domains); !r)
    return tl::unexpected(r.error());
  if (auto r = load("dontsignmailto", "DontSignMailTo", kIcase, cfg.dont_sign_mail_to); !r)
    return tl::unexpected(r.error());
  std::optional<Dataset> sender_headers;
  if (auto r = load("senderheaders", "SenderHeaders", kIcase, sender_headers); !r)
    return tl::unexpected(r.error());
  if (sender_headers) {
    cfg.sender_headers.clear();
    for (const auto& e : sender_headers->entries) cfg.sender_headers.push_back(e.key);
  }

  if (cfg.macro_list) {
    for (const auto& e : cfg.macro_list->entries) {
      // Verified: an entry "name=" (no values) crashes opendkim 2.11 (SIGSEGV) on every
      // message; with milter_default_action = tempfail all mail then waits.
      if (e.has_value && e.value.empty()) {
        return fail(Errc::Config, fmt::format("MacroList: entry {:?} has an empty value list "
                                              "(opendkim 2.11 crashes on every message)",
                                              e.key + "="));
      }
      if (e.key.size() >= 2 && e.key.front() == '{') {
        rd.warnings.push_back(
            fmt::format("MacroList: entry {:?} matches no macro: OpenDKIM "
                        "adds the braces itself (write {})",
                        e.key, strip_braces(e.key)));
      }
    }
  }

  // opendkim.conf(5) Mode: with signing on, "(a) Domain, KeyFile, Selector, no KeyTable, no
  // SigningTable; (b) KeyTable, SigningTable, no Domain, no KeyFile, no Selector". Verified
  // startup failures: Selector xor KeyFile, Domain without them (and no KeyTable), KeyTable
  // without SigningTable and the reverse. Domain next to a KeyTable is ignored, not refused.
  if (cfg.sign) {
    const auto* sel = rd.get("selector");
    const auto* kf = rd.get("keyfile");
    if ((sel == nullptr) != (kf == nullptr)) {
      return fail(Errc::Config, fmt::format("{}: KeyFile and Selector must both be defined or both "
                                            "be undefined (OpenDKIM refuses to start)",
                                            (sel != nullptr ? sel : kf)->where));
    }
    if (cfg.key_table && !cfg.signing_table) {
      return fail(Errc::Config, "KeyTable requires SigningTable (OpenDKIM refuses to start)");
    }
    if (cfg.signing_table && !cfg.key_table) {
      return fail(Errc::Config, "SigningTable requires KeyTable (OpenDKIM refuses to start)");
    }
    if (cfg.domain && !cfg.key_table && sel == nullptr) {
      return fail(Errc::Config, "Domain requires KeyFile and Selector (OpenDKIM refuses to start)");
    }
  }

  if (cfg.key_table && cfg.signing_table) {
    for (const auto& e : cfg.key_table->entries) {
      if (!parse_key(e.value)) {
        rd.warnings.push_back(
            fmt::format("KeyTable: entry {:?} is not domain:selector:key "
                        "(OpenDKIM tempfails mail that selects it)",
                        e.key));
      }
    }
    for (const auto& e : cfg.signing_table->entries) {
      const auto name = std::string_view(e.value).substr(0, e.value.find(':'));
      if (name != "%" && cfg.key_table->find(name) == nullptr) {
        rd.warnings.push_back(
            fmt::format("SigningTable: {:?} names key {:?}, which is not in "
                        "KeyTable (OpenDKIM tempfails mail it matches)",
                        e.key, std::string(name)));
      }
    }
  }

  cfg.files = std::move(rd.files);
  cfg.warnings = std::move(rd.warnings);
  return cfg;
}

// ---- predict --------------------------------------------------------------------------------

namespace {

Prediction unsigned_because(Outcome o, std::string reason) {
  Prediction p;
  p.outcome = o;
  p.reason = std::move(reason);
  return p;
}

// opendkim(8) OPERATION (2): the client is trusted when (a) authenticated, (b) in
// InternalHosts, (c) connected to a daemon named in MTA, or (d) matching MacroList.
bool macro_list_matches(const Dataset& ml, std::span<const Macro> macros) {
  for (const auto& e : ml.entries) {
    const auto* v = find_macro(macros, e.key);
    if (v == nullptr) continue;
    // Verified: a set macro with an empty value satisfies an entry without values.
    if (!e.has_value) return true;
    std::string_view alts = e.value;
    while (true) {
      const auto bar = alts.find('|');
      if (alts.substr(0, bar) == *v) return true;  // case-sensitive, per opendkim.conf(5)
      if (bar == std::string_view::npos) break;
      alts.remove_prefix(bar + 1);
    }
  }
  return false;
}

std::string client_label(const IpAddress& ip, std::string_view name, bool by_name) {
  return by_name ? fmt::format("{} [{}]", ascii_lower(name), ip.str()) : ip.str();
}

}  // namespace

Prediction predict(const Config& cfg, const SigningRequest& req) {
  if (!cfg.sign) {
    return unsigned_because(Outcome::VerifyOnlyMode,
                            fmt::format("OpenDKIM Mode is {} (verify only)", cfg.mode));
  }

  // Verified: with no client address (milter family "unspec") OpenDKIM checks the lists as if
  // the client were 127.0.0.1.
  auto addr_text = trim(req.client_addr);
  const bool no_addr = addr_text.empty() || iequals(addr_text, "unknown");
  const auto ip = parse_ip_keep_mapped(no_addr ? std::string_view{"127.0.0.1"} : addr_text);
  if (!ip) {
    return unsigned_because(
        Outcome::BadClient,
        fmt::format("client address {:?} is not an IP address", std::string(addr_text)));
  }
  const auto name = trim(req.client_name);

  // opendkim.conf(5) PeerList: "clients whose connections should be accepted without
  // processing" (verified: accepted at connect, authenticated or not).
  if (cfg.peer_list) {
    const auto hit = match_hosts(*cfg.peer_list, *ip, name);
    if (hit.hit == HostHit::Match) {
      const auto who = client_label(*ip, name, hit.by_name);
      return unsigned_because(
          Outcome::PeerListed,
          hit.entry == ip->str() || hit.entry == ascii_lower(name)
              ? fmt::format("client {} is in OpenDKIM PeerList", who)
              : fmt::format("client {} is in OpenDKIM PeerList (entry {})", who, hit.entry));
    }
  }

  // Trust. opendkim(8) OPERATION tests {auth_type} (verified: {auth_authen} alone does not
  // sign); Postfix sends the two together, so either tells.
  bool trusted = req.authenticated;
  if (!trusted) {
    const auto* at = find_macro(req.macros, "auth_type");
    trusted = at != nullptr && !at->empty();
  }
  const auto& ih = cfg.internal_hosts ? *cfg.internal_hosts : default_internal_hosts();
  const auto internal = match_hosts(ih, *ip, name);
  trusted = trusted || internal.hit == HostHit::Match;
  if (!trusted && cfg.macro_list) trusted = macro_list_matches(*cfg.macro_list, req.macros);
  if (!trusted && cfg.mta) {
    // opendkim(8) OPERATION (c); verified: compared with {daemon_name}, case-sensitively.
    const auto* dn = find_macro(req.macros, "daemon_name");
    trusted = dn != nullptr && cfg.mta->find(*dn) != nullptr;
  }
  if (!trusted) {
    std::string reason;
    if (internal.hit == HostHit::Excluded) {
      reason = fmt::format("client {} excluded by OpenDKIM InternalHosts entry {}", ip->str(),
                           internal.entry);
    } else {
      reason = fmt::format("client {} not in OpenDKIM InternalHosts", ip->str());
      std::vector<std::string> notes;
      if (!cfg.internal_hosts) notes.emplace_back("not set: only 127.0.0.1 and ::1");
      if (!ih.hostnames.empty() && name.empty()) {
        notes.push_back(fmt::format("host name entries not checked without the client name: {}",
                                    join(ih.hostnames)));
      }
      if (!ih.dead.empty()) {
        std::vector<std::string> d;
        for (const auto& [entry, why] : ih.dead) d.push_back(fmt::format("{} ({})", entry, why));
        notes.push_back(fmt::format("entries that match nothing: {}", join(d)));
      }
      if (!notes.empty()) reason += " (" + join(notes, "; ") + ")";
    }
    return unsigned_because(Outcome::NotTrusted, std::move(reason));
  }

  // The sender: the SenderMacro value when set (verified), else the header address.
  std::string_view sender = req.from_address;
  if (!cfg.sender_macro.empty()) {
    if (const auto* v = find_macro(req.macros, cfg.sender_macro)) sender = *v;
  }
  sender = strip_angle(sender);
  const auto at = sender.rfind('@');
  if (sender.empty()) return unsigned_because(Outcome::NoSender, "no From address");
  if (at == std::string_view::npos || at + 1 == sender.size()) {
    return unsigned_because(Outcome::NoSender,
                            fmt::format("From address {:?} has no domain", std::string(sender)));
  }
  const auto address = ascii_lower(sender);
  const std::string_view user = std::string_view(address).substr(0, at);
  const std::string domain = address.substr(at + 1);

  // opendkim.conf(5) ExemptDomains: "mail from which should be ignored entirely". Verified:
  // exact domain only (".example.net" does not cover x.example.net), case-insensitive.
  if (cfg.exempt_domains && cfg.exempt_domains->find(domain) != nullptr) {
    return unsigned_because(Outcome::ExemptDomain,
                            fmt::format("From domain {} is in OpenDKIM ExemptDomains", domain));
  }
  // opendkim.conf(5) DontSignMailTo: "if any one of the recipients ... matches". Verified:
  // the exact address, case-insensitive; domain entries do not cover addresses.
  if (cfg.dont_sign_mail_to) {
    for (const auto rcpt : req.recipients) {
      const auto r = ascii_lower(strip_angle(rcpt));
      if (cfg.dont_sign_mail_to->find(r) != nullptr) {
        return unsigned_because(Outcome::DontSignRecipient,
                                fmt::format("recipient {} is in OpenDKIM DontSignMailTo", r));
      }
    }
  }

  Prediction p;
  if (cfg.key_table) {
    // opendkim.conf(5) SigningTable. refile: patterns against the whole address, in file
    // order. Other types: "the full user@host is checked first, then simply host, then
    // user@.domain (with all superdomains checked in sequence ...), then .domain, then user@*,
    // and finally *" (verified, including that ".domain" does not cover the domain itself and
    // that SubDomains does not apply here).
    const auto& st = *cfg.signing_table;
    const DatasetEntry* hit = nullptr;
    if (st.kind == DatasetKind::Refile) {
      hit = st.find(address);
    } else {
      std::vector<std::string> keys{address, domain};
      std::vector<std::string_view> parents;
      for (auto dot = domain.find('.'); dot != std::string::npos; dot = domain.find('.', dot + 1))
        parents.push_back(std::string_view(domain).substr(dot));  // ".example.com", ".com"
      for (const auto par : parents) keys.push_back(fmt::format("{}@{}", user, par));
      for (const auto par : parents) keys.emplace_back(par);
      keys.push_back(fmt::format("{}@*", user));
      keys.emplace_back("*");
      for (const auto& k : keys) {
        if ((hit = st.find(k)) != nullptr) break;
      }
    }
    if (hit == nullptr) {
      return unsigned_because(Outcome::NoKey,
                              fmt::format("no OpenDKIM key for From domain {} (no SigningTable "
                                          "match for {})",
                                          domain, address));
    }
    // The value's first field names the key ("%": the sender's domain); a second, after ':',
    // is the i= signer.
    std::string key_name = hit->value.substr(0, hit->value.find(':'));
    if (key_name == "%") key_name = domain;
    const auto* key = cfg.key_table->find(key_name);
    if (key == nullptr) {
      return unsigned_because(Outcome::BrokenKey,
                              fmt::format("OpenDKIM SigningTable maps {} to key {:?}, which is not "
                                          "in KeyTable (OpenDKIM tempfails the message)",
                                          address, key_name));
    }
    const auto ks = parse_key(key->value);
    if (!ks) {
      return unsigned_because(Outcome::BrokenKey,
                              fmt::format("OpenDKIM KeyTable entry {:?} is not domain:selector:key "
                                          "(OpenDKIM tempfails the message)",
                                          key_name));
    }
    // opendkim.conf(5) KeyTable: a domain of "%" is "replaced by the apparent domain of the
    // sender".
    p.domain = ks->domain == "%" ? domain : ks->domain;
    p.selector = ks->selector;
    p.key_name = key_name;
  } else if (cfg.domain) {
    // opendkim.conf(5) Domain + SubDomains ("Sign subdomains of those listed by the Domain
    // parameter as well"). Verified: exact and case-insensitive (a trailing dot does not
    // match), d= is the listed domain a subdomain matched (d=example.org for send.example.org).
    std::string_view d = domain;
    bool found = false;
    while (true) {
      if (cfg.domain->find(d) != nullptr) {
        found = true;
        break;
      }
      const auto dot = d.find('.');
      if (!cfg.sub_domains || dot == std::string_view::npos) break;
      d.remove_prefix(dot + 1);
    }
    if (!found) {
      std::string note;
      if (!cfg.sub_domains) {
        for (auto dot = domain.find('.'); dot != std::string::npos;
             dot = domain.find('.', dot + 1)) {
          const auto parent = std::string_view(domain).substr(dot + 1);
          if (cfg.domain->find(parent) != nullptr) {
            note = fmt::format(" ({} is in Domain, but SubDomains is off)", parent);
            break;
          }
        }
      }
      return unsigned_because(Outcome::NoKey,
                              fmt::format("no OpenDKIM key for From domain {}{}", domain, note));
    }
    p.domain = std::string(d);
    p.selector = cfg.selector;
  } else {
    return unsigned_because(Outcome::NoKey,
                            fmt::format("no OpenDKIM key for From domain {} (neither Domain nor "
                                        "KeyTable is set)",
                                        domain));
  }
  p.will_sign = true;
  p.outcome = Outcome::Signs;
  return p;
}

}  // namespace rampart::core::dkim
