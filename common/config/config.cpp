// The settings table and everything it drives: the TOML parser and validators, the built-in
// defaults, --print-defaults and the rampart.toml(5) man page. parse() does no I/O; load() is the
// only function here that touches the file system. toml++ exceptions stop in this file.
#include "config/config.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace rampart::config {

namespace {

// The one declaration of every setting: {table, key, type, default as TOML, help, check}.
// Help is shown by --print-defaults and the man page: lower-case, no trailing period.
// One line per setting keeps adding one a one-line change, so clang-format leaves the table alone.
// clang-format off
constexpr Setting settings_table[] = {
    {"store", "url", Type::String, R"("sqlite:///var/lib/rampart/rampart.db")", "where the rule tables and counters live: sqlite:///path (one host) or postgresql://... (shared by several MTA hosts)", Check::StoreUrl},
    {"store", "connect_timeout", Type::Duration, R"("5s")", "how long to wait for the store to accept a connection before giving up with a temporary failure", Check::Positive},
    {"store", "busy_timeout", Type::Duration, R"("5s")", "how long SQLite waits for another process's lock before giving up with a temporary failure (0s: do not wait)", Check::None},
    {"milter", "listen", Type::String, R"("unix:/var/spool/postfix/rampart/milter.sock")", "where rampart-milter listens, in libmilter notation: inet:PORT@HOST, inet6:PORT@HOST or unix:/path (matches smtpd_milters)", Check::MilterListen},
    {"milter", "log_level", Type::String, R"("info")", "least severe log level written: error, warning, info or debug", Check::LogLevel},
    {"milter", "rules_poll_interval", Type::Duration, R"("10s")", "how often the store's rules_version and the OpenDKIM files are checked for a change to reload", Check::Positive},
    {"milter", "opendkim_config", Type::String, R"("/etc/opendkim.conf")", "the OpenDKIM configuration whose signing scope rampart-milter predicts (\"\" disables the DKIM scope check)", Check::None},
    {"milter", "on_unsigned", Type::String, R"("tempfail")", "what to do with a message OpenDKIM will not sign or signs unaligned: tempfail (451 4.7.0), quarantine (hold queue), reject (550 5.7.1) or warn", Check::OneOf, "tempfail|quarantine|reject|warn"},
    {"milter", "on_no_stream", Type::String, R"("accept")", "what to do with a message that resolves to no stream: accept (deliver unpinned) or tempfail (451 4.7.1)", Check::OneOf, "accept|tempfail"},
    {"milter", "on_error", Type::String, R"("tempfail")", "what to do when rampart-milter itself fails on a message: tempfail (451 4.3.0) or accept", Check::OneOf, "tempfail|accept"},
    {"milter", "timeout", Type::Duration, R"("30s")", "how long libmilter waits on Postfix before dropping a connection", Check::Positive},
    {"policyd", "listen", Type::StringList, R"(["unix:/var/spool/postfix/rampart/policy.sock"])", "where rampart-policyd listens, in Postfix notation: inet:HOST:PORT or unix:/path (matches check_policy_service)", Check::PolicydListen},
    {"policyd", "log_level", Type::String, R"("info")", "least severe log level written: error, warning, info or debug", Check::LogLevel},
    {"policyd", "idle_timeout", Type::Duration, R"("300s")", "how long a policy connection may stay idle before it is closed", Check::Positive},
    {"policyd", "rules_poll_interval", Type::Duration, R"("10s")", "how often the store's rules_version is checked for a rule change to reload", Check::Positive},
    {"policyd", "dns_servers", Type::StringList, R"([])", "DNS servers for MX lookups, as IP or IP:PORT ([v6]:PORT); empty: the system resolver (/etc/resolv.conf)", Check::DnsServers},
    {"policyd", "dns_timeout", Type::Duration, R"("2s")", "longest wait for one MX lookup before on_dns_error applies", Check::Positive},
    {"policyd", "on_dns_error", Type::String, R"("defer")", "what to answer when the recipient domain's MX lookup times out or fails: defer (DEFER_IF_PERMIT 4.4.3) or dunno (only the stream's own limits apply)", Check::OneOf, "defer|dunno"},
    {"policyd", "on_store_error", Type::String, R"("defer")", "what to answer when a budget is spent and the store cannot be reached to lease more: defer (DEFER_IF_PERMIT 4.3.0) or dunno (accept uncounted)", Check::OneOf, "defer|dunno"},
    {"policyd", "lease_ttl", Type::Duration, R"("60s")", "how long a leased block of budget may be spent before its unused part is handed back to the store", Check::Positive},
    {"policyd", "host_id", Type::String, R"("")", "name this host's leases carry in the store (\"\": the host name)", Check::None},
    {"policyd", "max_connections", Type::Integer, R"(2000)", "most simultaneous policy connections; more are closed at once and logged", Check::Positive},
    {"sidecar", "rules_dir", Type::String, R"("/usr/share/rampart/rules")", "directory of the shipped default rule data that the rampart command applies into the store", Check::NonEmpty},
    {"sidecar", "postfix_config_dir", Type::String, R"("/etc/postfix")", "the Postfix instance whose hold queue rampart release drains (postqueue -c / postsuper -c)", Check::NonEmpty},
    {"sidecar", "log_level", Type::String, R"("info")", "least severe log level written: error, warning, info or debug", Check::LogLevel},
    {"sidecar.dmarc", "imap_url", Type::String, R"("")", "the IMAP server rampart dmarc fetch reads aggregate reports from: imaps://HOST[:PORT] (implicit TLS, port 993) or imap://HOST[:PORT] (STARTTLS, port 143); \"\" means not configured", Check::ImapUrl},
    {"sidecar.dmarc", "imap_user", Type::String, R"("")", "the IMAP login name (required with imap_url)", Check::None},
    {"sidecar.dmarc", "imap_password_file", Type::String, R"("")", "file whose first line is the IMAP password (required with imap_url; the password is never logged nor given on a command line)", Check::None},
    {"sidecar.dmarc", "imap_mailbox", Type::String, R"("INBOX")", "the mailbox whose unseen messages are fetched", Check::NonEmpty},
    {"sidecar.dmarc", "imap_move_to", Type::String, R"("")", "the folder a processed message is moved to (created when missing); \"\" marks it \\Seen instead", Check::None},
    {"sidecar.dmarc", "imap_tls", Type::String, R"("verify")", "TLS for the IMAP connection: verify (certificate and host name checked), insecure (encrypted, certificate not checked) or none (plain text, for tests only)", Check::OneOf, "verify|insecure|none"},
    {"sidecar.dmarc", "imap_ca_file", Type::String, R"("")", "PEM file of the CA certificates trusted for the IMAP server (\"\": the system's CA store)", Check::None},
    {"sidecar.dmarc", "imap_timeout", Type::Duration, R"("30s")", "longest wait for any one step of the IMAP conversation (connect, TLS handshake, a reply) before a temporary failure", Check::Positive},
    {"sidecar.dmarc", "imap_max_message", Type::Size, R"("50MB")", "largest message fetched from IMAP; a larger one is skipped, reported and left unseen", Check::Positive},
    {"sidecar.dmarc", "max_compressed", Type::Size, R"("10MB")", "largest report attachment (gzip or zip) accepted before unpacking", Check::Positive},
    {"sidecar.dmarc", "max_decompressed", Type::Size, R"("200MB")", "largest report XML accepted after unpacking; a report that unpacks to more is refused", Check::Positive},
    {"sidecar.dmarc", "max_depth", Type::Integer, R"(4)", "deepest nesting of MIME parts and archives searched for a report", Check::Positive},
    {"sidecar.dmarc", "no_report_days", Type::Integer, R"(3)", "days without any aggregate report for a domain before rampart raises the no-report alarm", Check::Positive},
    {"sidecar.dmarc", "egress_pass_percent", Type::Integer, R"(95)", "least share of messages from our own egress addresses that must pass DMARC before rampart raises an alarm", Check::Percent},
    {"sidecar.dmarc", "outside_fail_messages", Type::Integer, R"(20)", "messages per report period failing DMARC from addresses outside our egress set before rampart raises an alarm (spoofing or a forgotten sender)", Check::Positive},
};
// clang-format on

// A problem found while walking the document; reported in file order.
struct Problem {
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  std::string text;
};

std::size_t index_of(const Setting* s) { return static_cast<std::size_t>(s - settings().data()); }

// Distinct table names in declaration order.
std::vector<std::string_view> table_names() {
  std::vector<std::string_view> out;
  for (const auto& s : settings()) {
    if (std::find(out.begin(), out.end(), s.table) == out.end()) out.push_back(s.table);
  }
  return out;
}

// Optimal string alignment distance (Levenshtein plus adjacent transposition), ASCII
// case-insensitive: "listn", "lsiten" and "LISTEN" are all close to "listen".
std::size_t edit_distance(std::string_view a, std::string_view b) {
  const auto lower = [](char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  };
  const std::size_t n = a.size();
  const std::size_t m = b.size();
  std::vector<std::size_t> prev2(m + 1), prev(m + 1), cur(m + 1);
  for (std::size_t j = 0; j <= m; ++j) prev[j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1])) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[m];
}

// The closest candidate within edit distance 2, first declared on a tie; empty if none.
std::string_view closest(std::string_view word, const std::vector<std::string_view>& candidates) {
  constexpr std::size_t max_distance = 2;
  std::string_view best;
  std::size_t best_distance = max_distance + 1;
  for (const auto c : candidates) {
    // Cheap bound first: the distance is at least the length difference.
    const std::size_t diff =
        c.size() > word.size() ? c.size() - word.size() : word.size() - c.size();
    if (diff > max_distance) continue;
    const std::size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

std::string_view describe_node(toml::node_type t) {
  switch (t) {
    case toml::node_type::none: return "nothing";
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "floating-point number";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
  }
  return "value";
}

// What a value of this type looks like, for "expected ..., got ..." messages.
std::string_view expectation(Type t) {
  switch (t) {
    case Type::String: return "a string";
    case Type::Integer: return "an integer";
    case Type::Boolean: return "a boolean";
    case Type::Duration: return R"(a duration string such as "300s")";
    case Type::StringList: return "a list of strings";
    case Type::Size: return R"(a byte count or a size string such as "10MB")";
  }
  return "a value";
}

// ---- value checks: each returns an error text, or nothing when the value is fine ----

std::optional<std::string> check_port(std::string_view port) {
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return fmt::format("port {:?} is not a number from 0 to 65535", port);
  }
  unsigned value = 0;
  for (const char c : port) value = value * 10 + static_cast<unsigned>(c - '0');
  if (value > 65535) return fmt::format("port {:?} is not a number from 0 to 65535", port);
  return std::nullopt;
}

// Host names, IPv4 and IPv6 literals (with an optional %zone): a deliberately small alphabet.
std::optional<std::string> check_host(std::string_view host) {
  if (host.empty()) return std::string("missing host");
  const auto ok = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_' || c == ':' || c == '%';
  };
  if (!std::all_of(host.begin(), host.end(), ok)) return fmt::format("bad host {:?}", host);
  return std::nullopt;
}

std::optional<std::string> check_unix_path(std::string_view path) {
  // sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
  constexpr std::size_t max_path = 107;
  if (path.size() < 2 || path.front() != '/') {
    return fmt::format("socket path {:?} is not absolute", path);
  }
  if (path.size() > max_path) {
    return fmt::format("socket path is longer than {} bytes", max_path);
  }
  if (std::any_of(path.begin(), path.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return std::string("socket path contains a control character");
  }
  return std::nullopt;
}

// libmilter's smfi_setconn() notation, as in Postfix's smtpd_milters.
std::optional<std::string> check_milter_listen(std::string_view v) {
  if (v.starts_with("unix:")) return check_unix_path(v.substr(5));
  std::string_view rest;
  if (v.starts_with("inet:")) {
    rest = v.substr(5);
  } else if (v.starts_with("inet6:")) {
    rest = v.substr(6);
  } else {
    return std::string("expected inet:PORT@HOST, inet6:PORT@HOST or unix:/path");
  }
  const auto at = rest.find('@');
  if (at == std::string_view::npos) return std::string("expected PORT@HOST after the inet prefix");
  if (auto bad = check_port(rest.substr(0, at))) return bad;
  return check_host(rest.substr(at + 1));
}

// Postfix's notation for check_policy_service (SMTPD_POLICY_README): inet:HOST:PORT, IPv6 hosts
// in brackets as in inet:[::1]:10040, or unix:/path.
std::optional<std::string> check_policyd_listen(std::string_view v) {
  if (v.starts_with("unix:")) return check_unix_path(v.substr(5));
  if (!v.starts_with("inet:")) return std::string("expected inet:HOST:PORT or unix:/path");
  const std::string_view rest = v.substr(5);
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos) return std::string("expected HOST:PORT after inet:");
  std::string_view host = rest.substr(0, colon);
  if (auto bad = check_port(rest.substr(colon + 1))) return bad;
  if (host.starts_with('[')) {
    if (host.size() < 3 || !host.ends_with(']')) return fmt::format("bad host {:?}", host);
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return std::string("an IPv6 host needs brackets, as in inet:[::1]:10040");
  }
  return check_host(host);
}

// A DNS server: an IP address (v4 or v6), optionally with :PORT (IPv6 then in brackets).
std::optional<std::string> check_dns_server(std::string_view v) {
  std::string_view host = v;
  std::optional<std::string_view> port;
  if (v.starts_with('[')) {
    const auto close = v.find(']');
    if (close == std::string_view::npos) return std::string("missing ]");
    host = v.substr(1, close - 1);
    const auto rest = v.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return std::string("expected :PORT after ]");
      port = rest.substr(1);
    }
  } else if (std::count(v.begin(), v.end(), ':') == 1) {
    const auto colon = v.find(':');
    host = v.substr(0, colon);
    port = v.substr(colon + 1);
  }
  const std::string h(host);
  unsigned char buf[sizeof(struct in6_addr)];
  if (inet_pton(AF_INET, h.c_str(), buf) != 1 && inet_pton(AF_INET6, h.c_str(), buf) != 1) {
    return fmt::format("{:?} is not an IP address (a DNS server is given by address)", h);
  }
  if (port) return check_port(*port);
  return std::nullopt;
}

// imap://HOST[:PORT] or imaps://HOST[:PORT], IPv6 hosts in brackets, an optional trailing "/".
// The mailbox is its own setting: a path in the URL (RFC 5092) is refused rather than ignored.
std::optional<std::string> check_imap_url(std::string_view v) {
  std::string_view rest;
  if (v.starts_with("imaps://")) {
    rest = v.substr(8);
  } else if (v.starts_with("imap://")) {
    rest = v.substr(7);
  } else {
    return std::string("expected imaps://HOST[:PORT] or imap://HOST[:PORT]");
  }
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) {
    return std::string("a path is not allowed (the mailbox is imap_mailbox)");
  }
  if (rest.find('@') != std::string_view::npos) {
    return std::string("user information is not allowed (use imap_user and imap_password_file)");
  }
  std::string_view host = rest;
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return std::string("missing ]");
    host = rest.substr(1, close - 1);
    const auto tail = rest.substr(close + 1);
    if (!tail.empty()) {
      if (tail[0] != ':') return std::string("expected :PORT after ]");
      if (auto bad = check_port(tail.substr(1))) return bad;
    }
  } else if (const auto colon = rest.find(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    if (auto bad = check_port(rest.substr(colon + 1))) return bad;
  }
  return check_host(host);
}

// The reason value fails s.check, or nothing. value holds the alternative for s.type.
std::optional<std::string> check_value(const Setting& s, const Config::Value& value) {
  switch (s.check) {
    case Check::None: return std::nullopt;
    case Check::NonEmpty:
      if (const auto* v = std::get_if<std::string>(&value); v != nullptr && v->empty()) {
        return std::string("must not be empty");
      }
      return std::nullopt;
    case Check::Positive:
      if (const auto* d = std::get_if<std::chrono::milliseconds>(&value);
          d != nullptr && d->count() <= 0) {
        return std::string("must be greater than zero");
      }
      if (const auto* i = std::get_if<std::int64_t>(&value); i != nullptr && *i <= 0) {
        return fmt::format("{} must be greater than zero", *i);
      }
      if (const auto* z = std::get_if<std::uint64_t>(&value); z != nullptr && *z == 0) {
        return std::string("must be greater than zero");
      }
      return std::nullopt;
    case Check::LogLevel: {
      const auto* v = std::get_if<std::string>(&value);
      if (v == nullptr) return std::nullopt;
      if (*v == "error" || *v == "warning" || *v == "info" || *v == "debug") return std::nullopt;
      return fmt::format("bad log level {:?}: expected error, warning, info or debug", *v);
    }
    case Check::StoreUrl: {
      const auto* v = std::get_if<std::string>(&value);
      if (v == nullptr) return std::nullopt;
      if (v->starts_with("postgresql://") || v->starts_with("postgres://")) return std::nullopt;
      if (v->starts_with("sqlite://") && v->size() > 9) return std::nullopt;
      return fmt::format(
          "bad url {:?}: expected sqlite:///path, postgresql://... or postgres://...", *v);
    }
    case Check::MilterListen: {
      const auto* v = std::get_if<std::string>(&value);
      if (v == nullptr) return std::nullopt;
      if (auto why = check_milter_listen(*v)) return fmt::format("bad endpoint {:?}: {}", *v, *why);
      return std::nullopt;
    }
    case Check::OneOf: {
      const auto* v = std::get_if<std::string>(&value);
      if (v == nullptr) return std::nullopt;
      std::string_view rest = s.choices;
      while (!rest.empty()) {
        const auto bar = rest.find('|');
        if (rest.substr(0, bar) == *v) return std::nullopt;
        rest = bar == std::string_view::npos ? std::string_view{} : rest.substr(bar + 1);
      }
      std::string want(s.choices);
      std::replace(want.begin(), want.end(), '|', ',');
      return fmt::format("bad value {:?}: expected one of {}", *v, want);
    }
    case Check::ImapUrl: {
      const auto* v = std::get_if<std::string>(&value);
      if (v == nullptr || v->empty()) return std::nullopt;
      if (auto why = check_imap_url(*v)) return fmt::format("bad url {:?}: {}", *v, *why);
      return std::nullopt;
    }
    case Check::Percent:
      if (const auto* i = std::get_if<std::int64_t>(&value); i != nullptr && (*i < 0 || *i > 100)) {
        return fmt::format("{} is not a percentage from 0 to 100", *i);
      }
      return std::nullopt;
    case Check::DnsServers: {
      const auto* v = std::get_if<std::vector<std::string>>(&value);
      if (v == nullptr) return std::nullopt;
      for (const auto& e : *v) {
        if (auto why = check_dns_server(e)) return fmt::format("bad server {:?}: {}", e, *why);
      }
      return std::nullopt;
    }
    case Check::PolicydListen: {
      const auto* v = std::get_if<std::vector<std::string>>(&value);
      if (v == nullptr) return std::nullopt;
      if (v->empty()) return std::string("must list at least one endpoint");
      for (const auto& e : *v) {
        if (auto why = check_policyd_listen(e))
          return fmt::format("bad endpoint {:?}: {}", e, *why);
      }
      return std::nullopt;
    }
  }
  return std::nullopt;
}

// Converts one TOML node to the setting's type and checks it. On failure, a Problem whose text
// lacks the "[table] key: " prefix (the caller adds it) and whose line is the closest node's.
tl::expected<Config::Value, Problem> convert(const Setting& s, const toml::node& node) {
  const auto where = [](const toml::node& n) {
    return std::pair{n.source().begin.line, n.source().begin.column};
  };
  const auto problem = [&](const toml::node& n, std::string text) {
    auto [line, column] = where(n);
    return tl::unexpected(Problem{line, column, std::move(text)});
  };
  const auto wrong_type = [&](const toml::node& n) {
    return problem(
        n, fmt::format("expected {}, got {}", expectation(s.type), describe_node(n.type())));
  };

  Config::Value value;
  switch (s.type) {
    case Type::String:
      if (const auto* v = node.as_string()) {
        value = v->get();
      } else {
        return wrong_type(node);
      }
      break;
    case Type::Integer:
      if (const auto* v = node.as_integer()) {
        value = v->get();
      } else {
        return wrong_type(node);
      }
      break;
    case Type::Boolean:
      if (const auto* v = node.as_boolean()) {
        value = v->get();
      } else {
        return wrong_type(node);
      }
      break;
    case Type::Duration: {
      const auto* v = node.as_string();
      if (v == nullptr) return wrong_type(node);
      auto d = parse_duration(v->get());
      if (!d) return problem(node, std::move(d.error().what));
      value = *d;
      break;
    }
    case Type::Size:
      if (const auto* i = node.as_integer()) {
        if (i->get() < 0) return problem(node, fmt::format("{} is not a size", i->get()));
        value = static_cast<std::uint64_t>(i->get());
      } else if (const auto* str = node.as_string()) {
        auto z = parse_size(str->get());
        if (!z) return problem(node, std::move(z.error().what));
        value = *z;
      } else {
        return wrong_type(node);
      }
      break;
    case Type::StringList: {
      const auto* arr = node.as_array();
      if (arr == nullptr) return wrong_type(node);
      std::vector<std::string> items;
      items.reserve(arr->size());
      for (std::size_t i = 0; i < arr->size(); ++i) {
        const auto* item = (*arr)[i].as_string();
        if (item == nullptr) {
          return problem((*arr)[i], fmt::format("element {}: expected a string, got {}", i + 1,
                                                describe_node((*arr)[i].type())));
        }
        items.push_back(item->get());
      }
      value = std::move(items);
      break;
    }
  }
  if (auto why = check_value(s, value)) {
    // A duration's value no longer holds the operator's text: quote it from the node.
    if (s.type == Type::Duration) {
      *why = fmt::format("bad duration {:?}: {}", node.as_string()->get(), *why);
    }
    return problem(node, std::move(*why));
  }
  return value;
}

}  // namespace

// Fills a Config; the friend of Config that parse() and defaults() go through.
struct Builder {
  static Config empty(std::string source) {
    Config c;
    c.source_ = std::move(source);
    c.values_.resize(settings().size());
    c.given_.assign(settings().size(), false);
    return c;
  }
  static void set(Config& c, std::size_t i, Config::Value v, bool given) {
    c.values_[i] = std::move(v);
    c.given_[i] = given;
  }
  static void rename(Config& c, std::string source) { c.source_ = std::move(source); }
};

namespace {

// Whether a Check can apply to a Type; a mismatch in the table would skip validation silently.
bool check_fits(Check check, Type type) {
  switch (check) {
    case Check::None: return true;
    case Check::NonEmpty:
    case Check::LogLevel:
    case Check::StoreUrl:
    case Check::MilterListen: return type == Type::String;
    case Check::OneOf:
    case Check::ImapUrl: return type == Type::String;
    case Check::Percent: return type == Type::Integer;
    case Check::Positive:
      return type == Type::Duration || type == Type::Integer || type == Type::Size;
    case Check::PolicydListen: return type == Type::StringList;
    case Check::DnsServers: return type == Type::StringList;
  }
  return false;
}

Result<Config> build_defaults() {
  Config c = Builder::empty("(defaults)");
  for (const auto& s : settings()) {
    if (!check_fits(s.check, s.type)) {
      return fail(Errc::Internal,
                  fmt::format("built-in setting [{}] {}: its check does not fit a {}", s.table,
                              s.key, describe(s.type)));
    }
    const std::string doc = fmt::format("v = {}", s.default_toml);
    try {
      const toml::table root = toml::parse(std::string_view(doc), std::string_view("(defaults)"));
      const toml::node* node = root.get("v");
      if (node == nullptr) {
        return fail(Errc::Internal,
                    fmt::format("built-in default [{}] {}: no value", s.table, s.key));
      }
      auto v = convert(s, *node);
      if (!v) {
        return fail(Errc::Internal,
                    fmt::format("built-in default [{}] {}: {}", s.table, s.key, v.error().text));
      }
      Builder::set(c, index_of(&s), std::move(*v), false);
    } catch (const toml::parse_error& e) {
      return fail(Errc::Internal, fmt::format("built-in default [{}] {}: {:?}: {}", s.table, s.key,
                                              s.default_toml, e.description()));
    }
  }
  return c;
}

// Roff text: escape backslashes and make hyphens copyable (groff_man(7)).
std::string roff(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
  }
  return out;
}

// Splits text into lines of at most width characters at spaces (longer words stay whole).
std::vector<std::string_view> wrap(std::string_view text, std::size_t width) {
  std::vector<std::string_view> lines;
  while (text.size() > width) {
    auto cut = text.rfind(' ', width);
    if (cut == std::string_view::npos || cut == 0) cut = text.find(' ');
    if (cut == std::string_view::npos) break;
    lines.push_back(text.substr(0, cut));
    text.remove_prefix(cut + 1);
  }
  if (!text.empty()) lines.push_back(text);
  return lines;
}

// Rules between settings, checked once every value is valid on its own. Each problem points at the
// line of the setting that makes the combination wrong (imap_url), or line 0 when it is a default.
std::vector<Problem> cross_check(const Config& c, const std::vector<std::size_t>& given_line) {
  std::vector<Problem> out;
  constexpr std::string_view dmarc = "sidecar.dmarc";
  const auto line_of = [&](std::string_view key) {
    return static_cast<std::uint32_t>(given_line[index_of(find_setting(dmarc, key))]);
  };
  const std::string& url = c.string(dmarc, "imap_url");
  if (url.empty()) return out;
  for (const auto key : {std::string_view("imap_user"), std::string_view("imap_password_file")}) {
    if (c.string(dmarc, key).empty()) {
      out.push_back(Problem{line_of("imap_url"), 0,
                            fmt::format("[{}] imap_url is set but {} is empty", dmarc, key)});
    }
  }
  if (url.starts_with("imaps://") && c.string(dmarc, "imap_tls") == "none") {
    out.push_back(Problem{
        line_of("imap_tls"), 0,
        fmt::format("[{}] imap_tls: \"none\" contradicts the imaps:// url {:?}", dmarc, url)});
  }
  return out;
}

}  // namespace

std::span<const Setting> settings() { return settings_table; }

const Setting* find_setting(std::string_view table, std::string_view key) {
  for (const auto& s : settings()) {
    if (s.table == table && s.key == key) return &s;
  }
  return nullptr;
}

std::string describe(Type type) {
  switch (type) {
    case Type::String: return "string";
    case Type::Integer: return "integer";
    case Type::Boolean: return "boolean";
    case Type::Duration: return "duration";
    case Type::StringList: return "list of strings";
    case Type::Size: return "size";
  }
  return "unknown";
}

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  const auto bad = [&] {
    return fail(
        Errc::Config,
        fmt::format("bad duration {:?}: expected a number followed by ms, s, m, h or d", text));
  };
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return bad();
  const std::string_view unit = text.substr(digits);
  std::int64_t scale = 0;
  if (unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60 * 1000;
  } else if (unit == "h") {
    scale = 60 * 60 * 1000;
  } else if (unit == "d") {
    scale = 24 * 60 * 60 * 1000;
  } else {
    return bad();
  }
  constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
  std::int64_t n = 0;
  for (std::size_t i = 0; i < digits; ++i) {
    const std::int64_t d = text[i] - '0';
    if (n > (max - d) / 10)
      return fail(Errc::Config, fmt::format("bad duration {:?}: too long", text));
    n = n * 10 + d;
  }
  if (n > max / scale) return fail(Errc::Config, fmt::format("bad duration {:?}: too long", text));
  return std::chrono::milliseconds(n * scale);
}

Result<std::uint64_t> parse_size(std::string_view text) {
  const auto bad = [&] {
    return fail(Errc::Config,
                fmt::format("bad size {:?}: expected a number followed by B, KB, MB or GB", text));
  };
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return bad();
  const std::string_view unit = text.substr(digits);
  unsigned shift = 0;
  if (unit == "B") {
    shift = 0;
  } else if (unit == "KB") {
    shift = 10;
  } else if (unit == "MB") {
    shift = 20;
  } else if (unit == "GB") {
    shift = 30;
  } else {
    return bad();
  }
  // Bounded by int64 like the integer form, so a size always fits a TOML integer.
  constexpr std::uint64_t max =
      static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < digits; ++i) {
    const auto d = static_cast<std::uint64_t>(text[i] - '0');
    if (n > (max - d) / 10)
      return fail(Errc::Config, fmt::format("bad size {:?}: too large", text));
    n = n * 10 + d;
  }
  if (n > (max >> shift)) return fail(Errc::Config, fmt::format("bad size {:?}: too large", text));
  return n << shift;
}

Result<Config> defaults() {
  // Built once: the table is constant, and parse() starts every Config from these values.
  static const Result<Config> cached = build_defaults();
  return cached;
}

Result<Config> parse(std::string_view toml_text, std::string_view file_name) {
  auto base = defaults();
  if (!base) return base;
  Config cfg = std::move(*base);
  Builder::rename(cfg, std::string(file_name));

  toml::table root;
  try {
    root = toml::parse(toml_text, file_name);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    return fail(Errc::Config,
                fmt::format("{}:{}:{}: {}", file_name, at.line, at.column, e.description()));
  }

  std::vector<Problem> problems;
  const auto add = [&](const toml::source_region& at, std::string text) {
    problems.push_back(Problem{at.begin.line, at.begin.column, std::move(text)});
  };
  // A key's own position when toml++ kept one, else its value's.
  const auto position = [](const toml::key& k, const toml::node& n) -> const toml::source_region& {
    return k.source().begin.line != 0 ? k.source() : n.source();
  };
  const auto tables = table_names();
  // A TOML table name the declarations use, directly or as the parent of a nested one
  // ("sidecar" for [sidecar.dmarc]).
  const auto known_table = [&](std::string_view name) {
    return std::any_of(tables.begin(), tables.end(), [&](std::string_view t) {
      return t == name || (t.size() > name.size() && t.starts_with(name) && t[name.size()] == '.');
    });
  };
  std::vector<std::size_t> given_line(settings().size(), 0);  // for the cross-setting checks

  // Walks one table whose dotted name is path ("" for the document root).
  const auto walk = [&](const auto& self, const std::string& path, const toml::table& tbl) -> void {
    for (const auto& [k, v] : tbl) {
      const std::string_view key = k.str();
      const Setting* s = path.empty() ? nullptr : find_setting(path, key);
      if (s != nullptr) {
        auto value = convert(*s, v);
        if (!value) {
          auto p = std::move(value.error());
          p.text = fmt::format("[{}] {}: {}", path, key, p.text);
          problems.push_back(std::move(p));
          continue;
        }
        Builder::set(cfg, index_of(s), std::move(*value), true);
        given_line[index_of(s)] = position(k, v).begin.line;
        continue;
      }
      const std::string child = path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
      if (known_table(child)) {
        if (const auto* sub = v.as_table()) {
          self(self, child, *sub);
        } else {
          add(position(k, v),
              fmt::format("[{}]: expected a table, got {}", child, describe_node(v.type())));
        }
        continue;
      }
      // An unknown sub-table reads as an unknown key of its parent unless it is close to a
      // declared one ([sidecar.dmarx]).
      if (const auto near = closest(child, tables);
          v.is_table() && (path.empty() || !near.empty())) {
        add(position(k, v),
            near.empty() ? fmt::format("unknown table {:?}", child)
                         : fmt::format("unknown table {:?} (did you mean {:?}?)", child, near));
        continue;
      }
      if (path.empty()) {
        // A setting above the first [table] header: point at the table that has this key.
        std::string hint;
        for (const auto t : tables) {
          if (find_setting(t, key) != nullptr) {
            hint = fmt::format(" (it belongs under [{}])", t);
            break;
          }
        }
        add(position(k, v), fmt::format("unknown key {:?} outside any table{}", key, hint));
        continue;
      }
      std::vector<std::string_view> keys;
      for (const auto& d : settings()) {
        if (d.table == path) keys.push_back(d.key);
      }
      std::string hint;
      if (const auto near = closest(key, keys); !near.empty()) {
        hint = fmt::format(" (did you mean {:?}?)", near);
      } else {
        for (const auto t : tables) {
          if (find_setting(t, key) != nullptr) {
            hint = fmt::format(" (did you mean [{}] {}?)", t, key);
            break;
          }
        }
      }
      add(position(k, v), fmt::format("[{}]: unknown key {:?}{}", path, key, hint));
    }
  };
  walk(walk, std::string(), root);
  if (problems.empty()) {
    for (auto& p : cross_check(cfg, given_line)) problems.push_back(std::move(p));
  }

  if (problems.empty()) return cfg;
  // toml::table iterates in key order; report the first problem in file order.
  std::stable_sort(problems.begin(), problems.end(), [](const Problem& a, const Problem& b) {
    return std::pair{a.line, a.column} < std::pair{b.line, b.column};
  });
  const auto& first = problems.front();
  std::string more;
  if (problems.size() == 2) more = " (and 1 more problem)";
  if (problems.size() > 2) more = fmt::format(" (and {} more problems)", problems.size() - 1);
  return fail(Errc::Config, fmt::format("{}:{}: {}{}", file_name, first.line, first.text, more));
}

Result<Config> load(const std::string& path, bool path_was_given) {
  const auto cannot_read = [&](int err) {
    return fail(Errc::Config,
                fmt::format("cannot read {:?}: {}", path, std::generic_category().message(err)));
  };
  errno = 0;
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                             &std::fclose);
  if (!file) {
    const int err = errno;
    // A fresh install has no file: the default path may be absent, a named one may not.
    if (!path_was_given && err == ENOENT) return defaults();
    return cannot_read(err);
  }
  std::string text;
  char buf[8192];
  for (;;) {
    const std::size_t n = std::fread(buf, 1, sizeof buf, file.get());
    text.append(buf, n);
    if (n < sizeof buf) break;
  }
  if (std::ferror(file.get()) != 0) return cannot_read(errno != 0 ? errno : EIO);
  return parse(text, path);
}

std::string print_defaults() {
  constexpr std::size_t width = 78;
  std::string out =
      "# rampart.toml: every setting with its built-in default (--print-defaults).\n"
      "# Copy the settings you change into /etc/rampart/rampart.toml; unknown tables and keys\n"
      "# are errors. Durations take a unit: 250ms, 300s, 5m, 1h, 1d. Sizes are a byte count or\n"
      "# take a unit: 512KB, 10MB, 1GB (powers of 1024). [a.b] is the table b nested in [a].\n";
  for (const auto table : table_names()) {
    out += fmt::format("\n[{}]\n", table);
    for (const auto& s : settings()) {
      if (s.table != table) continue;
      out += '\n';
      for (const auto line : wrap(s.help, width)) out += fmt::format("# {}\n", line);
      out += fmt::format("{} = {}\n", s.key, s.default_toml);
    }
  }
  return out;
}

std::string man_page(std::string_view version) {
  std::string out = fmt::format(
      ".TH RAMPART.TOML 5 \"\" \"rampart {}\" \"File Formats\"\n"
      ".SH NAME\n"
      "rampart.toml \\- host configuration for rampart\\-milter, rampart\\-policyd and rampart\n"
      ".SH SYNOPSIS\n"
      "{}\n"
      ".SH DESCRIPTION\n"
      "One TOML file per host holds the settings of every rampart program, one table per program\n"
      "plus [store]. Every program reads it, or the file named with \\fB\\-\\-config\\fR FILE, "
      "and\n"
      "checks it with \\fB\\-\\-check\\-config\\fR. Unknown tables and keys are errors. When the\n"
      "default file does not exist, every setting takes its default.\n"
      ".PP\n"
      "Durations are strings of digits and one unit: ms, s, m, h or d, as in \"300s\".\n"
      "Sizes are integers (bytes) or strings of digits and one unit: B, KB, MB or GB (powers of\n"
      "1024), as in \"10MB\". A table named with a dot, as [sidecar.dmarc], is nested in the\n"
      "table before the dot.\n"
      "\\fB\\-\\-print\\-defaults\\fR prints every setting with its default as TOML.\n"
      ".SH SETTINGS\n",
      roff(version), roff(default_path));
  for (const auto table : table_names()) {
    out += fmt::format(".SS [{}]\n", roff(table));
    for (const auto& s : settings()) {
      if (s.table != table) continue;
      out += fmt::format(".TP\n.B {}\n\\&{}, default {}.\n.br\n\\&{}.\n", roff(s.key),
                         roff(describe(s.type)), roff(s.default_toml), roff(s.help));
    }
  }
  out += ".SH SEE ALSO\n.BR postconf (5),\n.BR postconf (1)\n";
  return out;
}

// ---- Config ----

std::size_t Config::index(std::string_view table, std::string_view key, Type want) const {
  const Setting* s = find_setting(table, key);
  if (s == nullptr) {
    throw std::logic_error(fmt::format("config: [{}] {} is not a declared setting", table, key));
  }
  if (s->type != want) {
    throw std::logic_error(fmt::format("config: [{}] {} is a {}, not a {}", table, key,
                                       describe(s->type), describe(want)));
  }
  const std::size_t i = index_of(s);
  if (i >= values_.size()) throw std::logic_error("config: used before it was built");
  return i;
}

const std::string& Config::string(std::string_view table, std::string_view key) const {
  return std::get<std::string>(values_[index(table, key, Type::String)]);
}

std::int64_t Config::integer(std::string_view table, std::string_view key) const {
  return std::get<std::int64_t>(values_[index(table, key, Type::Integer)]);
}

bool Config::boolean(std::string_view table, std::string_view key) const {
  return std::get<bool>(values_[index(table, key, Type::Boolean)]);
}

std::chrono::milliseconds Config::duration(std::string_view table, std::string_view key) const {
  return std::get<std::chrono::milliseconds>(values_[index(table, key, Type::Duration)]);
}

const std::vector<std::string>& Config::list(std::string_view table, std::string_view key) const {
  return std::get<std::vector<std::string>>(values_[index(table, key, Type::StringList)]);
}

std::uint64_t Config::size(std::string_view table, std::string_view key) const {
  return std::get<std::uint64_t>(values_[index(table, key, Type::Size)]);
}

bool Config::is_set(std::string_view table, std::string_view key) const {
  const Setting* s = find_setting(table, key);
  if (s == nullptr) {
    throw std::logic_error(fmt::format("config: [{}] {} is not a declared setting", table, key));
  }
  return given_[index(table, key, s->type)];
}

Result<void> Config::set_string(std::string_view table, std::string_view key, std::string value) {
  const std::size_t i = index(table, key, Type::String);
  Value v = std::move(value);
  if (auto why = check_value(settings()[i], v)) {
    return fail(Errc::Config, fmt::format("[{}] {}: {}", table, key, *why));
  }
  values_[i] = std::move(v);
  given_[i] = true;
  return {};
}

Result<void> Config::set_list(std::string_view table, std::string_view key,
                              std::vector<std::string> value) {
  const std::size_t i = index(table, key, Type::StringList);
  Value v = std::move(value);
  if (auto why = check_value(settings()[i], v)) {
    return fail(Errc::Config, fmt::format("[{}] {}: {}", table, key, *why));
  }
  values_[i] = std::move(v);
  given_[i] = true;
  return {};
}

}  // namespace rampart::config
