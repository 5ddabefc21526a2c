// libmilter shims for rampart-milter: each extern "C" callback reads what libmilter hands over,
// calls the pure decision core (core/message.hpp) and applies its verdict. Nothing throws
// across extern "C": guarded() catches everything and answers per [milter] on_error.
#include <arpa/inet.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "milter/state.hpp"
#include "obs/log.hpp"

namespace rampart::milter {

State& state() {
  static State s;
  return s;
}

namespace {

struct Session {
  Connection conn;
  Snapshot snap;  // pinned at MAIL FROM for the whole transaction
  std::optional<Message> msg;
  std::string queue_id;
  bool warned_macros = false;
};

std::string macro(SMFICTX* ctx, const char* name) {
  const char* v = smfi_getsymval(ctx, const_cast<char*>(name));
  return v != nullptr ? v : "";
}

// The reply libmilter will send; text is made safe for smfi_setreply ('%' doubled, no CR/LF).
void set_reply(SMFICTX* ctx, const Reply& r) {
  const auto text = reply_safe(r.text);
  smfi_setreply(ctx, const_cast<char*>(r.code.c_str()), const_cast<char*>(r.status.c_str()),
                const_cast<char*>(text.c_str()));
}

sfsistat error_action(SMFICTX* ctx) {
  if (state().on_error_accept) return SMFIS_CONTINUE;
  set_reply(ctx, {"451", "4.3.0", "rampart: temporary failure; try again later"});
  return SMFIS_TEMPFAIL;
}

void log_events(Session& s, const std::vector<Event>& events) {
  for (const auto& e : events) {
    obs::decision(s.queue_id, e.verdict, e.fields);
    const auto rule = e.fields.find("rule=");
    state().counters.add(rule == std::string::npos
                             ? e.verdict
                             : e.verdict + " " +
                                   e.fields.substr(rule, e.fields.find(' ', rule) - rule));
  }
}

sfsistat apply(SMFICTX* ctx, Session& s, const Verdict& v) {
  log_events(s, v.events);
  switch (v.act) {
    case Act::Continue: return SMFIS_CONTINUE;
    case Act::Reject: set_reply(ctx, v.reply); return SMFIS_REJECT;
    case Act::Tempfail: set_reply(ctx, v.reply); return SMFIS_TEMPFAIL;
  }
  return SMFIS_TEMPFAIL;
}

template <class Body>
sfsistat guarded(SMFICTX* ctx, const char* where, Body&& body) noexcept {
  try {
    auto* s = static_cast<Session*>(smfi_getpriv(ctx));
    if (s == nullptr) {
      obs::log(obs::Level::Error, "milter.no_session", fmt::format("callback={}", where));
      return error_action(ctx);
    }
    return body(*s);
  } catch (const std::exception& e) {
    obs::log(obs::Level::Error, "milter.exception",
             fmt::format("callback={} error=\"{}\"", where, reply_safe(e.what())));
  } catch (...) {
    obs::log(obs::Level::Error, "milter.exception", fmt::format("callback={}", where));
  }
  try {
    return error_action(ctx);
  } catch (...) {
    return SMFIS_TEMPFAIL;
  }
}

std::string sockaddr_text(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa == nullptr) return {};
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
  }
  return buf;
}

extern "C" sfsistat rampart_connect(SMFICTX* ctx, char* hostname, _SOCK_ADDR* hostaddr) {
  try {
    auto* s = new Session();
    smfi_setpriv(ctx, s);
    s->conn.daemon_name = macro(ctx, "{daemon_name}");
    s->conn.client_addr = macro(ctx, "{client_addr}");
    if (s->conn.client_addr.empty()) s->conn.client_addr = sockaddr_text(hostaddr);
    if (hostname != nullptr) s->conn.client_name = hostname;
    const auto port = macro(ctx, "{daemon_port}");
    std::int64_t p = 0;
    if (!port.empty() &&
        std::from_chars(port.data(), port.data() + port.size(), p).ec == std::errc{}) {
      s->conn.port = p;
    }  // else: the decision core tempfails each message and names the fix
    return SMFIS_CONTINUE;
  } catch (...) {
    return error_action(ctx);
  }
}

extern "C" sfsistat rampart_envfrom(SMFICTX* ctx, char** argv) {
  return guarded(ctx, "envfrom", [&](Session& s) {
    s.snap = state().snapshot();
    if (!s.snap.rules) return error_action(ctx);
    s.queue_id = macro(ctx, "i");
    s.msg.emplace(s.snap.rules, s.snap.dkim, state().settings);
    std::string sender = argv != nullptr && argv[0] != nullptr ? argv[0] : "";
    if (sender.size() >= 2 && sender.front() == '<' && sender.back() == '>')
      sender = sender.substr(1, sender.size() - 2);
    return apply(ctx, s, s.msg->mail(s.conn, sender, macro(ctx, "{auth_authen}")));
  });
}

extern "C" sfsistat rampart_envrcpt(SMFICTX* ctx, char** argv) {
  return guarded(ctx, "envrcpt", [&](Session& s) {
    if (!s.msg) return error_action(ctx);
    if (s.queue_id.empty()) s.queue_id = macro(ctx, "i");
    return apply(ctx, s, s.msg->rcpt(argv != nullptr && argv[0] != nullptr ? argv[0] : ""));
  });
}

extern "C" sfsistat rampart_header(SMFICTX* ctx, char* name, char* value) {
  return guarded(ctx, "header", [&](Session& s) {
    if (s.msg) s.msg->header(name != nullptr ? name : "", value != nullptr ? value : "");
    return SMFIS_CONTINUE;
  });
}

// Nothing to decide at end of headers; registered so the protocol step exists for every peer
// (miltertest, like some MTAs, will not send EOH to a filter that negotiated it away).
extern "C" sfsistat rampart_eoh(SMFICTX* /*ctx*/) { return SMFIS_CONTINUE; }

extern "C" sfsistat rampart_body(SMFICTX* ctx, unsigned char* chunk, size_t len) {
  return guarded(ctx, "body", [&](Session& s) {
    if (s.msg && chunk != nullptr)
      s.msg->body(std::string_view(reinterpret_cast<const char*>(chunk), len));
    return SMFIS_CONTINUE;
  });
}

extern "C" sfsistat rampart_eom(SMFICTX* ctx) {
  return guarded(ctx, "eom", [&](Session& s) -> sfsistat {
    if (!s.msg) return error_action(ctx);
    const auto qid = macro(ctx, "i");
    if (!qid.empty()) s.queue_id = qid;
    if (state().dkim_check && !s.snap.dkim && s.msg->stream() != nullptr) {
      // The OpenDKIM files could not be read: we cannot tell whether this leaves signed.
      obs::decision(s.queue_id, state().on_error_accept ? "warn" : "tempfail",
                    fmt::format("stream={} rule=dkim-config reason=\"{}\"", s.msg->stream()->name,
                                reply_safe(s.snap.dkim_error)));
      s.msg.reset();
      return error_action(ctx);
    }
    std::vector<std::pair<std::string, std::string>> macros;
    for (const char* m :
         {"{daemon_name}", "{auth_type}", "{auth_authen}", "{client_addr}", "{client_name}"}) {
      auto v = macro(ctx, m);
      if (!v.empty()) {
        std::string name(m);
        if (name.front() == '{') name = name.substr(1, name.size() - 2);
        macros.emplace_back(std::move(name), std::move(v));
      }
    }
    const auto v = s.msg->eom(macros);
    s.msg.reset();
    if (v.act != Act::Continue) return apply(ctx, s, v);
    log_events(s, v.events);
    for (const auto& e : v.edits) {
      if (e.kind == HeaderEdit::Kind::Delete) {
        smfi_chgheader(ctx, const_cast<char*>(e.name.c_str()), e.index, nullptr);
      } else {
        smfi_insheader(ctx, e.index, const_cast<char*>(e.name.c_str()),
                       const_cast<char*>(e.value.c_str()));
      }
    }
    if (v.discard_all) return SMFIS_DISCARD;
    for (const auto& r : v.delete_rcpts) {
      const auto angle = "<" + r + ">";
      smfi_delrcpt(ctx, const_cast<char*>(angle.c_str()));
    }
    if (v.quarantine) smfi_quarantine(ctx, const_cast<char*>(reply_safe(*v.quarantine).c_str()));
    return SMFIS_CONTINUE;
  });
}

extern "C" sfsistat rampart_abort(SMFICTX* ctx) {
  return guarded(ctx, "abort", [&](Session& s) {
    s.msg.reset();
    s.queue_id.clear();
    return SMFIS_CONTINUE;
  });
}

extern "C" sfsistat rampart_close(SMFICTX* ctx) {
  delete static_cast<Session*>(smfi_getpriv(ctx));
  smfi_setpriv(ctx, nullptr);
  return SMFIS_CONTINUE;
}

}  // namespace

bool register_callbacks() {
  static smfiDesc desc{};
  desc.xxfi_name = const_cast<char*>("rampart-milter");
  desc.xxfi_version = SMFI_VERSION;
  desc.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_DELRCPT | SMFIF_QUARANTINE;
  desc.xxfi_connect = rampart_connect;
  desc.xxfi_envfrom = rampart_envfrom;
  desc.xxfi_envrcpt = rampart_envrcpt;
  desc.xxfi_header = rampart_header;
  desc.xxfi_eoh = rampart_eoh;
  desc.xxfi_body = rampart_body;
  desc.xxfi_eom = rampart_eom;
  desc.xxfi_abort = rampart_abort;
  desc.xxfi_close = rampart_close;
  return smfi_register(desc) == MI_SUCCESS;
}

}  // namespace rampart::milter
