// rampart-milter decision core: see message.hpp. Pure.
#include "milter/core/message.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "core/text.hpp"

namespace rampart::milter {

using core::ascii_lower;

std::optional<OnUnsigned> parse_on_unsigned(std::string_view s) {
  if (s == "tempfail") return OnUnsigned::Tempfail;
  if (s == "quarantine") return OnUnsigned::Quarantine;
  if (s == "reject") return OnUnsigned::Reject;
  if (s == "warn") return OnUnsigned::Warn;
  return std::nullopt;
}

std::optional<OnNoStream> parse_on_no_stream(std::string_view s) {
  if (s == "accept") return OnNoStream::Accept;
  if (s == "tempfail") return OnNoStream::Tempfail;
  return std::nullopt;
}

std::string reply_safe(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '%') {
      out += "%%";
    } else if (c == '\r' || c == '\n' || c == '\0') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

// Printable, bounded, no spaces: safe inside a key=value log field.
std::string log_value(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 256)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u <= ' ' || u >= 0x7f) ? '?' : c;
  }
  return out;
}

Reply reply(std::string code, std::string status, std::string text) {
  return Reply{std::move(code), std::move(status), std::move(text)};
}

}  // namespace

std::string from_address(std::string_view v) {
  // RFC 5322 mailbox: the angle-addr when there is one, else the addr-spec itself.
  v = trim(v);
  if (const auto lt = v.rfind('<'); lt != std::string_view::npos) {
    const auto gt = v.find('>', lt);
    if (gt == std::string_view::npos) return {};
    v = v.substr(lt + 1, gt - lt - 1);
  } else if (const auto paren = v.find('('); paren != std::string_view::npos) {
    v = v.substr(0, paren);  // trailing comment: a@b (Name)
  }
  v = trim(v);
  if (v.find(',') != std::string_view::npos || v.find(' ') != std::string_view::npos) return {};
  const auto norm = core::normalize_address(v);
  return norm ? *norm : std::string{};
}

std::string dkim_domain(std::string_view sig) {
  // Tags are "name=value" separated by ';' with folding whitespace anywhere (RFC 6376 3.2).
  std::size_t pos = 0;
  while (pos < sig.size()) {
    auto end = sig.find(';', pos);
    if (end == std::string_view::npos) end = sig.size();
    auto tag = trim(sig.substr(pos, end - pos));
    const auto eq = tag.find('=');
    if (eq != std::string_view::npos && trim(tag.substr(0, eq)) == "d") {
      std::string d;
      for (char c : tag.substr(eq + 1)) {
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') d += core::ascii_lower(c);
      }
      auto n = core::normalize_domain(d);
      return n ? *n : std::string{};
    }
    pos = end + 1;
  }
  return {};
}

bool aligned(std::string_view d, std::string_view from_domain) {
  if (d.empty() || from_domain.empty()) return false;
  auto under = [](std::string_view sub, std::string_view parent) {
    return sub.size() > parent.size() && sub.ends_with(parent) &&
           sub[sub.size() - parent.size() - 1] == '.' &&
           parent.find('.') != std::string_view::npos;  // never align on a bare TLD
  };
  return d == from_domain || under(from_domain, d) || under(d, from_domain);
}

std::string message_id_host(std::string_view v) {
  v = trim(v);
  if (v.size() >= 2 && v.front() == '<' && v.back() == '>') v = v.substr(1, v.size() - 2);
  const auto at = v.rfind('@');
  if (at == std::string_view::npos) return {};
  return ascii_lower(v.substr(at + 1));
}

std::string Message::stream_field() const { return stream_ != nullptr ? stream_->name : "-"; }

Verdict Message::mail(const Connection& conn, std::string_view sender, std::string_view auth_user) {
  conn_ = &conn;
  sender_ = std::string(sender);
  authenticated_ = !auth_user.empty();
  Verdict v;
  // Without {daemon_port} a port-selected stream can never match, and its mail would leave
  // unpinned and unchecked: the incident-5/10 failure mode. Refuse to guess (4xx) instead.
  if (!conn.port && rules_->selects_on_ports()) {
    v.act = Act::Tempfail;
    v.reply = reply("451", "4.3.5", "rampart: Postfix did not send {daemon_port}; try again later");
    v.events.push_back(
        {"tempfail", fmt::format("from=<{}> stream=- rule=macro-missing macro={{daemon_port}} "
                                 "fix=\"add {{daemon_port}} to milter_connect_macros\"",
                                 log_value(sender))});
    return v;
  }
  stream_ = rules_->resolve_stream({conn.port, conn.client_addr, sender, auth_user});
  if (stream_ == nullptr && settings_.on_no_stream == OnNoStream::Tempfail) {
    v.act = Act::Tempfail;
    v.reply = reply("451", "4.7.1", "rampart: message matches no stream; try again later");
    v.events.push_back(
        {"tempfail",
         fmt::format("from=<{}> stream=- rule=on_no_stream client={} port={}", log_value(sender),
                     log_value(conn.client_addr), conn.port ? std::to_string(*conn.port) : "-")});
  }
  return v;
}

Verdict Message::rcpt(std::string_view recipient) {
  Verdict v;
  const auto hit = rules_->find_exclusion(stream_, recipient);
  std::string_view r = recipient;
  if (r.size() >= 2 && r.front() == '<' && r.back() == '>') r = r.substr(1, r.size() - 2);
  if (!hit) {
    ++accepted_;
    if (recipients_.size() < kMaxKeptRecipients) recipients_.emplace_back(r);
    return v;
  }
  const auto& rule = *hit->rule;
  const auto fields =
      fmt::format("rcpt=<{}> stream={} rule={}", log_value(r), stream_field(), rule.category);
  switch (rule.effective_action()) {
    case core::ExclusionAction::Reject: {
      const auto status = std::string(rule.effective_status());
      const auto what =
          hit->by_address
              ? fmt::format("recipient {} excluded", log_value(r))
              : fmt::format("{} excluded", log_value(ascii_lower(core::address_domain(r))));
      v.act = Act::Reject;
      v.reply = reply(status.substr(0, 1) + "50", status,
                      fmt::format("rampart: {} ({})", what, rule.category));
      v.events.push_back({"reject", fields});
      break;
    }
    case core::ExclusionAction::Hold:
      ++accepted_;
      holds_.push_back(std::string(r));
      if (hold_rule_.empty()) hold_rule_ = rule.category;
      v.events.push_back({"hold", fields});
      break;
    case core::ExclusionAction::Discard:
      ++accepted_;
      discards_.push_back(std::string(r));
      v.events.push_back({"discard", fields});
      break;
  }
  return v;
}

void Message::header(std::string_view name, std::string_view value) {
  auto keep = [](std::string_view s) { return std::string(s.substr(0, kMaxKeptHeaderValue)); };
  if (core::iequals(name, "From")) {
    if (++from_count_ == 1) from_value_ = keep(value);
  } else if (core::iequals(name, "Message-ID")) {
    message_id_ = keep(value);
  } else if (core::iequals(name, "Content-Type")) {
    content_type_ = keep(value);
  } else if (core::iequals(name, kStreamHeader)) {
    ++stream_headers_;
  } else if (core::iequals(name, "DKIM-Signature")) {
    if (dkim_signatures_.size() < kMaxDkimSignatures)
      dkim_signatures_.push_back(dkim_domain(value));
  }
}

void Message::body(std::string_view chunk) {
  // Look for MIME part headers "Content-Type: text/plain|text/html" at line starts. Streaming:
  // only an unfinished line (bounded) is carried between chunks.
  constexpr std::size_t kMaxCarry = 256;
  auto scan_line = [&](std::string_view line) {
    constexpr std::string_view kCt = "content-type:";
    if (line.size() < kCt.size() || !core::iequals(line.substr(0, kCt.size()), kCt)) return;
    const auto type = ascii_lower(trim(line.substr(kCt.size())).substr(0, 16));
    if (type.starts_with("text/plain")) saw_plain_ = true;
    if (type.starts_with("text/html")) saw_html_ = true;
  };
  std::size_t pos = 0;
  while (pos < chunk.size()) {
    const auto nl = chunk.find('\n', pos);
    if (nl == std::string_view::npos) {
      const auto rest = chunk.substr(pos);
      carry_.append(rest.substr(0, kMaxCarry - std::min(kMaxCarry, carry_.size())));
      return;
    }
    if (carry_.empty()) {
      scan_line(chunk.substr(pos, nl - pos));
    } else {
      carry_.append(chunk.substr(pos, std::min(nl - pos, kMaxCarry)));
      scan_line(carry_);
      carry_.clear();
    }
    pos = nl + 1;
  }
}

EomVerdict Message::eom(const std::vector<std::pair<std::string, std::string>>& macros) {
  EomVerdict v;
  if (!carry_.empty()) body("\n");
  const std::string stream = stream_field();

  // Stream pin: client-supplied X-Rampart-Stream headers go (highest index first, so the
  // remaining indexes stay valid), then ours goes on top.
  for (int i = stream_headers_; i >= 1; --i) {
    v.edits.push_back({HeaderEdit::Kind::Delete, std::string(kStreamHeader), i, {}});
  }
  if (stream_headers_ > 0) {
    v.events.push_back({"strip", fmt::format("header={} count={} stream={}", kStreamHeader,
                                             stream_headers_, stream)});
  }

  auto refuse = [&](Act act, Reply r, std::string verdict, std::string fields) {
    v.act = act;
    v.reply = std::move(r);
    v.events.push_back({std::move(verdict), std::move(fields)});
  };
  std::vector<std::string> warnings;

  if (stream_ != nullptr) {
    // From identity (field notes, incident 9).
    const std::string from = from_count_ == 1 ? from_address(from_value_) : std::string{};
    const std::string from_domain{core::address_domain(from)};
    if (from_count_ == 0) {
      refuse(Act::Reject, reply("550", "5.7.1", "rampart: message has no From header"), "reject",
             fmt::format("stream={} rule=from-missing", stream));
      return v;
    }
    if (from_count_ > 1) {
      refuse(
          Act::Reject,
          reply("550", "5.7.1", fmt::format("rampart: message has {} From headers", from_count_)),
          "reject", fmt::format("stream={} rule=from-multiple", stream));
      return v;
    }
    if (from.empty()) {
      refuse(Act::Reject, reply("550", "5.7.1", "rampart: From header has no single address"),
             "reject", fmt::format("stream={} rule=from-unparseable", stream));
      return v;
    }
    if (!stream_->from_domains.empty() &&
        std::find(stream_->from_domains.begin(), stream_->from_domains.end(), from_domain) ==
            stream_->from_domains.end()) {
      refuse(Act::Reject,
             reply("550", "5.7.1",
                   fmt::format("rampart: From domain {} not allowed in stream {} (allowed: {})",
                               from_domain, stream, fmt::join(stream_->from_domains, ", "))),
             "reject",
             fmt::format("from=<{}> stream={} rule=from-domain", log_value(from), stream));
      return v;
    }

    // DKIM signing scope (incident 5): an aligned signature must be present or predicted.
    if (dkim_) {
      bool signed_aligned = false;
      for (const auto& d : dkim_signatures_)
        signed_aligned = signed_aligned || aligned(d, from_domain);
      if (!signed_aligned) {
        std::vector<std::pair<std::string_view, std::string_view>> mv;
        mv.reserve(macros.size());
        for (const auto& [k, val] : macros) mv.emplace_back(k, val);
        std::vector<std::string_view> rcpts(recipients_.begin(), recipients_.end());
        core::dkim::SigningRequest req;
        req.client_addr = conn_ != nullptr ? std::string_view(conn_->client_addr) : "";
        req.client_name = conn_ != nullptr ? std::string_view(conn_->client_name) : "";
        req.authenticated = authenticated_;
        req.from_address = from;
        req.macros = mv;
        req.recipients = rcpts;
        const auto p = core::dkim::predict(*dkim_, req);
        std::string why;
        if (!p.will_sign) {
          why = p.reason;
        } else if (!aligned(p.domain, from_domain)) {
          why = fmt::format("OpenDKIM would sign as d={}, not aligned with From domain {}",
                            p.domain, from_domain);
        } else if (dkim_signatures_.empty()) {
          why = fmt::format(
              "no DKIM-Signature yet although OpenDKIM should sign as d={} (is rampart-milter "
              "after "
              "OpenDKIM in smtpd_milters?)",
              p.domain);
        }
        if (!why.empty()) {
          const auto fields = fmt::format("from=<{}> stream={} rule=dkim-scope reason=\"{}\"",
                                          log_value(from), stream, reply_safe(why));
          switch (settings_.on_unsigned) {
            case OnUnsigned::Tempfail:
              refuse(Act::Tempfail, reply("451", "4.7.0", "rampart: would leave unsigned: " + why),
                     "tempfail", fields);
              return v;
            case OnUnsigned::Reject:
              refuse(Act::Reject, reply("550", "5.7.1", "rampart: would leave unsigned: " + why),
                     "reject", fields);
              return v;
            case OnUnsigned::Quarantine:
              v.quarantine = "rampart: would leave unsigned: " + why;
              v.events.push_back({"hold", fields});
              break;
            case OnUnsigned::Warn:
              warnings.push_back("unsigned");
              v.events.push_back({"warn", fields});
              break;
          }
        }
      }
    }

    // Hygiene (incident 13).
    const auto mid_host = message_id_host(message_id_);
    const bool bad_mid = mid_host == "localhost" || mid_host == "localhost.localdomain";
    const auto ct = ascii_lower(trim(content_type_).substr(0, 32));
    const bool html_only =
        (ct.starts_with("text/html") || (ct.starts_with("multipart/") && saw_html_)) && !saw_plain_;
    for (const auto& [bad, rule, what] :
         {std::tuple{bad_mid, "message-id-localhost",
                     fmt::format("Message-ID host is {}", mid_host)},
          std::tuple{html_only, "html-only",
                     std::string("HTML part without a text/plain alternative")}}) {
      if (!bad) continue;
      const auto fields = fmt::format("stream={} rule={}", stream, rule);
      if (stream_->hygiene == core::Hygiene::Refuse) {
        refuse(
            Act::Reject,
            reply("550", "5.6.0", fmt::format("rampart: {} (stream {} refuses it)", what, stream)),
            "reject", fields);
        return v;
      }
      warnings.push_back(rule);
      v.events.push_back({"warn", fields});
    }
  }

  v.edits.push_back({HeaderEdit::Kind::Insert, std::string(kStreamHeader), 0,
                     stream_ != nullptr
                         ? fmt::format("{} transport={}", stream_->name,
                                       stream_->transport.empty() ? "-" : stream_->transport)
                         : std::string("-")});
  if (!warnings.empty()) {
    v.edits.push_back({HeaderEdit::Kind::Insert, std::string(kWarningHeader), 0,
                       fmt::format("{}", fmt::join(warnings, ", "))});
  }
  if (!holds_.empty()) {
    v.quarantine = fmt::format("rampart: recipient <{}> excluded ({})", holds_.front(), hold_rule_);
  }
  v.delete_rcpts = discards_;
  v.discard_all = !discards_.empty() && discards_.size() == accepted_;
  v.events.push_back(
      {"pin",
       fmt::format("stream={} transport={}", stream,
                   stream_ != nullptr && !stream_->transport.empty() ? stream_->transport : "-")});
  return v;
}

}  // namespace rampart::milter
