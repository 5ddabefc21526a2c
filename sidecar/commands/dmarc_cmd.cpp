// `rampart dmarc ingest|fetch` and `rampart report dmarc` (issue 6): DMARC aggregate reports from
// files, directories, Maildirs and IMAP into the store, and the per-source-IP view with its
// flags. The pure work is in sidecar/dmarc (unpack: archives and MIME; parse: the XML); this file
// walks paths, reads files, talks to the store and prints.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "commands/context.hpp"
#include "core/cidr_set.hpp"
#include "core/dmarc.hpp"
#include "core/limits.hpp"
#include "core/ruleset.hpp"
#include "core/text.hpp"
#include "dmarc/parse.hpp"
#include "dmarc/unpack.hpp"
#include "imap/imap.hpp"
#include "obs/clock.hpp"
#include "rules/writer.hpp"

namespace rampart::sidecar {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kUsage =
    "usage: rampart dmarc ingest [--dry-run] [--format table|json] PATH...\n"
    "\n"
    "Store DMARC aggregate reports. A PATH is a file (.xml, .xml.gz, .gz, .zip, or an RFC 5322\n"
    "message, .eml), a directory (read recursively), or a Maildir (its new/ and cur/). Each\n"
    "input is taken by its content, not its name; messages are walked part by part (attachments\n"
    "or the whole body, any MIME type, base64 or quoted-printable, nested multiparts, archives in\n"
    "archives), bounded by [sidecar.dmarc] max_compressed, max_decompressed and max_depth. A\n"
    "report already stored (same org, report id, policy domain and date range) is a duplicate\n"
    "and changes nothing. One bad report never stops the others.\n"
    "\n"
    "  --dry-run         parse and report, store nothing (duplicates are still recognised)\n"
    "  --format FORMAT   table (default) or json: one object per report with keys source,\n"
    "                    org_name, report_id, policy_domain, begin, end, records, messages,\n"
    "                    dmarc_pass_messages, status (stored | duplicate | refused) and reason,\n"
    "                    then one {\"summary\": {...}} object\n"
    "\n"
    "Exit status: 0 every report stored or already there, 65 something was refused (the rest\n"
    "was stored), 64 usage, 66 a path could not be read, 75 store unreachable.";

constexpr std::string_view kFetchUsage =
    "usage: rampart dmarc fetch [--dry-run] [--format table|json]\n"
    "\n"
    "Store the DMARC aggregate reports in the unseen messages of the IMAP mailbox\n"
    "[sidecar.dmarc] imap_url / imap_mailbox (TLS on by default, the password read from\n"
    "imap_password_file), exactly as dmarc ingest stores files. A message is marked \\Seen (or\n"
    "moved to imap_move_to) only after its reports are stored; a message without a report is\n"
    "left unseen and listed, so a person can look at it. Interrupted fetches are safe to repeat:\n"
    "a report stored but not yet marked is a duplicate next time.\n"
    "\n"
    "  --dry-run         fetch and parse, store and mark nothing\n"
    "  --format FORMAT   table (default) or json, as for dmarc ingest\n"
    "\n"
    "Exit status: 0 ok, 65 a message held no report or something was refused, 75 the IMAP\n"
    "server or the store is unreachable (nothing is lost: run again), 78 configuration error\n"
    "(URL, login, TLS certificate, mailbox).";

constexpr std::string_view kReportUsage =
    "usage: rampart report dmarc [--days N] [--format table|json|csv]\n"
    "\n"
    "Per source IP over the DMARC aggregate reports whose period ended in the last N days\n"
    "(default 7): messages, DMARC pass %, DKIM and SPF aligned %, the reporters, and the stream\n"
    "whose egress_ip it is. Flags a stream's egress IP below [sidecar.dmarc] egress_pass_percent\n"
    "(95), an outside IP that sent outside_fail_messages (20) or more failing messages as you,\n"
    "and no report stored for no_report_days (3) days.\n"
    "\n"
    "  --days N          the period (default 7)\n"
    "  --format FORMAT   table (default), json (one object per IP, then {\"summary\": ...}) or "
    "csv\n"
    "\n"
    "Exit status: 0 nothing flagged, 1 something flagged, 64 usage, 75 store unreachable.";

// One spelling per address ("2001:DB8::1" and "2001:db8:0::1" are the same egress IP); text
// that is no address stays as it is.
std::string canonical_ip(std::string_view text) {
  const auto a = core::IpAddress::parse(text);
  return a ? a->str() : std::string(text);
}

constexpr int kExitData = 65;     // EX_DATAERR: a report was refused
constexpr int kExitNoInput = 66;  // EX_NOINPUT
constexpr int kExitFlagged = 1;

std::string q(std::string_view s) { return rules::json_quote(core::utf8_clean(s)); }

// Settings of [sidecar.dmarc], with the built-in defaults when the build's table lacks one.
struct DmarcSettings {
  dmarc::UnpackLimits unpack;
  std::int64_t no_report_days = 3;
  std::int64_t egress_pass_percent = 95;
  std::int64_t outside_fail_messages = 20;
};

DmarcSettings settings_of(const Context& ctx) {
  constexpr std::string_view t = "sidecar.dmarc";
  const auto& c = ctx.cfg;
  DmarcSettings s;
  s.unpack.max_compressed = static_cast<std::size_t>(c.size(t, "max_compressed"));
  s.unpack.max_decompressed = static_cast<std::size_t>(c.size(t, "max_decompressed"));
  s.unpack.max_total = std::max(s.unpack.max_total, s.unpack.max_decompressed);
  s.unpack.max_depth = static_cast<int>(std::min<std::int64_t>(c.integer(t, "max_depth"), 64));
  s.no_report_days = c.integer(t, "no_report_days");
  s.egress_pass_percent = c.integer(t, "egress_pass_percent");
  s.outside_fail_messages = c.integer(t, "outside_fail_messages");
  return s;
}

// One line of output: a report found (or refused) in an input.
struct Outcome {
  std::string source;
  std::optional<core::dmarc::Report> report;
  std::string status;  // stored | duplicate | refused
  std::string reason;
  bool pending = false;  // to be written by the next flush()
};

struct Totals {
  std::int64_t inputs = 0, messages = 0, reports = 0, stored = 0, duplicate = 0, refused = 0;
  std::int64_t records = 0, report_messages = 0, unreadable = 0, not_reports = 0;
};

class Ingest {
 public:
  // flush_each: write and print every input's reports before bytes() returns (IMAP: a message
  // is marked only once its reports are stored); else reports are written in batches.
  Ingest(bool dry_run, bool json, store::Store* st, DmarcSettings settings, bool flush_each)
      : dry_run_(dry_run),
        json_(json),
        flush_each_(flush_each),
        store_(st),
        settings_(std::move(settings)) {}

  // One input's bytes; `name` says where it came from. With flush_each, returns its outcomes
  // (also printed); else they are queued for flush(). Store errors come back as the error (the
  // caller stops: nothing more can be stored).
  Result<std::vector<Outcome>> bytes(std::string_view data, const std::string& name);
  // Writes the queued reports in one transaction, then prints the queued outcomes in order.
  Result<std::vector<Outcome>> flush();
  // A path: file, directory (recursive) or Maildir.
  Result<void> path(const std::string& p);
  void summary() const;
  const Totals& totals() const { return t_; }

 private:
  void print(const Outcome& o);
  Result<void> file(const fs::path& p);

  bool dry_run_, json_, flush_each_;
  store::Store* store_;
  std::vector<Outcome> queue_;
  std::size_t queued_reports_ = 0, queued_records_ = 0;
  DmarcSettings settings_;
  Totals t_;
  std::set<std::string> seen_;  // report keys seen in this run (dry run duplicates)
};

std::string iso(std::int64_t t) { return core::format_utc(t); }

void Ingest::print(const Outcome& o) {
  std::string line;
  const auto* r = o.report ? &*o.report : nullptr;
  if (json_) {
    line = fmt::format(
        "{{\"source\": {}, \"org_name\": {}, \"report_id\": {}, \"policy_domain\": {}, "
        "\"begin\": {}, \"end\": {}, \"records\": {}, \"messages\": {}, "
        "\"dmarc_pass_messages\": {}, \"status\": {}, \"reason\": {}}}\n",
        q(o.source), r ? q(r->org_name) : "null", r ? q(r->report_id) : "null",
        r ? q(r->policy.domain) : "null", r ? q(iso(r->begin)) : "null",
        r ? q(iso(r->end)) : "null", r ? std::to_string(r->records.size()) : "null",
        r ? std::to_string(r->messages()) : "null", r ? std::to_string(r->pass_messages()) : "null",
        q(o.status), o.reason.empty() ? "null" : q(o.reason));
  } else if (r != nullptr) {
    line = fmt::format("{:<9} {} {} {} {}..{} records={} messages={} pass={}{}  ({})\n", o.status,
                       core::utf8_clean(r->org_name), core::utf8_clean(r->report_id),
                       core::utf8_clean(r->policy.domain), iso(r->begin), iso(r->end),
                       r->records.size(), r->messages(), r->pass_messages(),
                       o.reason.empty() ? "" : " " + o.reason, core::utf8_clean(o.source));
  } else {
    line = fmt::format("{:<9} {}: {}\n", o.status, core::utf8_clean(o.source),
                       core::utf8_clean(o.reason));
  }
  std::fwrite(line.data(), 1, line.size(), stdout);
}

Result<std::vector<Outcome>> Ingest::bytes(std::string_view data, const std::string& name) {
  std::vector<Outcome> out;
  ++t_.inputs;
  const auto u = dmarc::unpack(data, name, settings_.unpack);
  if (u.message) ++t_.messages;
  for (const auto& r : u.refused) {
    out.push_back({r.where, std::nullopt, "refused", r.reason});
  }
  dmarc::XmlLimits xl;
  xl.max_bytes = settings_.unpack.max_decompressed;
  for (const auto& d : u.documents) {
    dmarc::Repairs repairs;
    auto rep = dmarc::parse_report(d.xml, xl, &repairs);
    if (!rep) {
      out.push_back({d.where, std::nullopt, "refused", rep.error().what});
      continue;
    }
    Outcome o{d.where, std::move(*rep), "stored", ""};
    if (!repairs.empty()) {
      o.reason = fmt::format("repaired: {}", fmt::join(repairs, "; "));
    }
    const auto& r = *o.report;
    const std::string key =
        fmt::format("{}\t{}\t{}\t{}\t{}", r.org_name, r.report_id, r.policy.domain, r.begin, r.end);
    if (!dry_run_ && store_ != nullptr) {
      o.pending = true;
      ++queued_reports_;
      queued_records_ += r.records.size();
    } else if (!seen_.insert(key).second) {
      o.status = "duplicate";
    } else if (store_ != nullptr) {
      RAMPART_TRY(known, store_->has_dmarc_report(r));
      if (known) o.status = "duplicate";
    }
    out.push_back(std::move(o));
  }
  if (u.documents.empty() && u.refused.empty()) {
    out.push_back({name, std::nullopt, "refused",
                   u.message ? "no aggregate report in this message"
                             : fmt::format("not a report ({})", dmarc::sniff(data))});
    ++t_.not_reports;
  }
  for (auto& o : out) queue_.push_back(std::move(o));
  // Batches of at most 200 reports or 100k records: the commit is cheap, memory stays bounded.
  if (flush_each_ || queued_reports_ >= 200 || queued_records_ >= 100000) return flush();
  return std::vector<Outcome>{};
}

Result<std::vector<Outcome>> Ingest::flush() {
  std::vector<store::Store::DmarcNew> batch;
  for (const auto& o : queue_) {
    if (o.pending) batch.push_back({&*o.report, o.source});
  }
  if (!batch.empty()) {
    auto fresh = store_->add_dmarc_reports(batch, obs::now_utc());
    if (!fresh && fresh.error().code != Errc::Invalid) return tl::unexpected(fresh.error());
    std::size_t i = 0;
    for (auto& o : queue_) {
      if (!o.pending) continue;
      o.pending = false;
      if (fresh) {
        if (!(*fresh)[i++]) o.status = "duplicate";
        continue;
      }
      // One report the store refuses (Errc::Invalid) refused the batch: one by one, so that
      // report is refused and the others still go in.
      auto one = store_->add_dmarc_report(*o.report, o.source, obs::now_utc());
      if (!one && one.error().code != Errc::Invalid) return tl::unexpected(one.error());
      if (!one) {
        o.status = "refused";
        o.reason = one.error().what;
        o.report.reset();
      } else if (!*one) {
        o.status = "duplicate";
      }
    }
  }
  for (const auto& o : queue_) {
    print(o);
    if (o.status == "refused") {
      ++t_.refused;
      continue;
    }
    ++t_.reports;
    ++(o.status == "stored" ? t_.stored : t_.duplicate);
    t_.records += static_cast<std::int64_t>(o.report->records.size());
    t_.report_messages += o.report->messages();
  }
  std::vector<Outcome> out = std::move(queue_);
  queue_.clear();
  queued_reports_ = queued_records_ = 0;
  return out;
}

Result<void> Ingest::file(const fs::path& p) {
  const std::string name = p.string();
  std::error_code ec;
  const auto size = fs::file_size(p, ec);
  if (ec) {
    std::fprintf(stderr, "rampart: dmarc: %s: %s\n", name.c_str(), ec.message().c_str());
    ++t_.unreadable;
    return {};
  }
  // A file no limit could accept is refused before it is read.
  const auto max_file =
      std::max(settings_.unpack.max_decompressed, settings_.unpack.max_compressed);
  if (size > max_file) {
    ++t_.inputs;
    queue_.push_back(
        {name, std::nullopt, "refused",
         fmt::format("{} bytes: larger than max_decompressed ({} bytes)", size, max_file)});
    return {};
  }
  std::ifstream in(p, std::ios::binary);
  std::string data(size, '\0');
  if (!in || !in.read(data.data(), static_cast<std::streamsize>(size))) {
    std::fprintf(stderr, "rampart: dmarc: %s: cannot read: %s\n", name.c_str(),
                 std::strerror(errno));
    ++t_.unreadable;
    return {};
  }
  RAMPART_TRY(outcomes, bytes(data, name));
  (void)outcomes;
  return {};
}

bool is_maildir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p / "cur", ec) && fs::is_directory(p / "new", ec);
}

Result<void> Ingest::path(const std::string& arg) {
  const fs::path p(arg);
  std::error_code ec;
  const auto st = fs::status(p, ec);
  if (ec || !fs::exists(st)) {
    std::fprintf(stderr, "rampart: dmarc: %s: %s\n", arg.c_str(),
                 ec ? ec.message().c_str() : "no such file or directory");
    ++t_.unreadable;
    return {};
  }
  if (!fs::is_directory(st)) return file(p);
  std::vector<fs::path> files;
  if (is_maildir(p)) {
    for (const char* sub : {"new", "cur"}) {
      for (auto it = fs::directory_iterator(p / sub, ec); !ec && it != fs::directory_iterator();
           it.increment(ec)) {
        if (it->is_regular_file(ec)) files.push_back(it->path());
      }
    }
  } else {
    for (auto it =
             fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (it->is_regular_file(ec)) files.push_back(it->path());
    }
  }
  if (ec) {
    std::fprintf(stderr, "rampart: dmarc: %s: %s\n", arg.c_str(), ec.message().c_str());
    ++t_.unreadable;
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    if (auto r = file(f); !r) return r;
  }
  return {};
}

void Ingest::summary() const {
  std::string s;
  if (json_) {
    s = fmt::format(
        "{{\"summary\": {{\"dry_run\": {}, \"inputs\": {}, \"messages\": {}, \"reports\": {}, "
        "\"stored\": {}, \"duplicate\": {}, \"refused\": {}, \"not_reports\": {}, "
        "\"unreadable\": {}, \"records\": {}, \"report_messages\": {}}}}}\n",
        dry_run_, t_.inputs, t_.messages, t_.reports, t_.stored, t_.duplicate, t_.refused,
        t_.not_reports, t_.unreadable, t_.records, t_.report_messages);
  } else {
    s = fmt::format(
        "{}{} inputs ({} messages): {} reports, {} {}, {} duplicate, {} refused, {} unreadable; "
        "{} records, {} messages reported\n",
        dry_run_ ? "dry run: " : "", t_.inputs, t_.messages, t_.reports, t_.stored,
        dry_run_ ? "to store" : "stored", t_.duplicate, t_.refused, t_.unreadable, t_.records,
        t_.report_messages);
  }
  std::fwrite(s.data(), 1, s.size(), stdout);
}

// A dry run needs the store only to recognise duplicates: without a usable one (unreachable,
// not migrated) it still parses and reports, and says what it cannot tell.
std::unique_ptr<store::Store> dry_run_store(std::unique_ptr<store::Store> st) {
  if (!st) return st;
  auto v = st->schema_version();
  if (v && *v == store::latest_schema_version()) return st;
  std::fprintf(stderr,
               "rampart: dmarc: warning: dry run without a usable store (%s): reports already "
               "stored are not recognised as duplicates\n",
               v ? fmt::format("schema version {}, this rampart needs {}", *v,
                               store::latest_schema_version())
                       .c_str()
                 : v.error().what.c_str());
  return nullptr;
}

int cmd_ingest(const Context& ctx, const Args& args) {
  bool dry_run = false, json = false;
  std::vector<std::string> paths;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a == "--help" || a == "-h") {
      std::printf("%.*s\n", static_cast<int>(kUsage.size()), kUsage.data());
      return kExitOk;
    } else if (a == "--dry-run") {
      dry_run = true;
    } else if (a == "--format") {
      if (i + 1 >= args.size() || (args[i + 1] != "table" && args[i + 1] != "json"))
        return usage_error("dmarc ingest: --format wants table or json");
      json = args[++i] == "json";
    } else if (a == "-") {
      return usage_error("dmarc ingest: reading stdin is not supported; give a file or directory");
    } else if (!a.starts_with("-")) {
      paths.push_back(a);
    } else {
      return usage_error(fmt::format("dmarc ingest: unknown option '{}'", a));
    }
  }
  if (paths.empty()) return usage_error("dmarc ingest: no PATH given");
  auto st = ctx.open_store();
  std::unique_ptr<store::Store> store;
  if (st) {
    store = std::move(*st);
  } else if (!dry_run) {
    return report(st.error());
  }
  if (dry_run) store = dry_run_store(std::move(store));
  Ingest ingest(dry_run, json, store.get(), settings_of(ctx), false);
  for (const auto& p : paths) {
    if (auto r = ingest.path(p); !r) return report(r.error());
  }
  if (auto r = ingest.flush(); !r) return report(r.error());
  ingest.summary();
  const auto& t = ingest.totals();
  if (t.unreadable > 0) return kExitNoInput;
  return t.refused > 0 ? kExitData : kExitOk;
}

int cmd_fetch(const Context& ctx, const Args& args) {
  bool dry_run = false, json = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a == "--help" || a == "-h") {
      std::printf("%.*s\n", static_cast<int>(kFetchUsage.size()), kFetchUsage.data());
      return kExitOk;
    } else if (a == "--dry-run") {
      dry_run = true;
    } else if (a == "--format") {
      if (i + 1 >= args.size() || (args[i + 1] != "table" && args[i + 1] != "json"))
        return usage_error("dmarc fetch: --format wants table or json");
      json = args[++i] == "json";
    } else {
      return usage_error(fmt::format("dmarc fetch: unknown argument '{}'", a));
    }
  }
  constexpr std::string_view t = "sidecar.dmarc";
  const auto& c = ctx.cfg;
  imap::Config ic;
  ic.url = c.string(t, "imap_url");
  if (ic.url.empty()) {
    return report(Error{Errc::Config,
                        "dmarc fetch: [sidecar.dmarc] imap_url is not set (imaps://HOST for the "
                        "mailbox that receives the reports)"});
  }
  ic.user = c.string(t, "imap_user");
  ic.password_file = c.string(t, "imap_password_file");
  ic.mailbox = c.string(t, "imap_mailbox");
  ic.move_to = c.string(t, "imap_move_to");
  ic.tls = c.string(t, "imap_tls");
  ic.ca_file = c.string(t, "imap_ca_file");
  ic.timeout = c.duration(t, "imap_timeout");
  ic.max_message = static_cast<std::size_t>(c.size(t, "imap_max_message"));

  std::unique_ptr<store::Store> store;
  if (auto st = ctx.open_store(); st) {
    store = std::move(*st);
  } else if (!dry_run) {
    return report(st.error());
  }
  if (dry_run) store = dry_run_store(std::move(store));
  auto session = imap::Session::open(ic);
  if (!session) return report(session.error());
  auto uids = session->unseen();
  if (!uids) return report(uids.error());
  Ingest ingest(dry_run, json, store.get(), settings_of(ctx), true);
  std::int64_t marked = 0, left = 0;
  int failed = 0;
  std::optional<Error> stop;
  for (const auto uid : *uids) {
    auto m = session->fetch(uid);
    if (!m) {
      stop = m.error();
      break;
    }
    const std::string name = fmt::format("imap {} uid {}", ic.mailbox, uid);
    if (!m->bytes) {
      const std::string why =
          fmt::format("{} bytes: larger than imap_max_message ({} bytes); left unseen", m->size,
                      ic.max_message);
      if (json) {
        std::printf(
            "{\"source\": %s, \"org_name\": null, \"report_id\": null, "
            "\"policy_domain\": null, \"begin\": null, \"end\": null, "
            "\"records\": null, \"messages\": null, \"dmarc_pass_messages\": null, "
            "\"status\": \"refused\", \"reason\": %s}\n",
            q(name).c_str(), q(why).c_str());
      } else {
        std::printf("%-9s %s: %s\n", "refused", name.c_str(), why.c_str());
      }
      ++left;
      ++failed;
      continue;
    }
    auto outcomes = ingest.bytes(*m->bytes, name);
    if (!outcomes) {
      stop = outcomes.error();
      break;
    }
    const bool has_report = std::any_of(outcomes->begin(), outcomes->end(),
                                        [](const Outcome& o) { return o.status != "refused"; });
    if (!has_report) {
      ++left;  // not a report: a person should look at it
      ++failed;
      continue;
    }
    if (!dry_run) {
      if (auto d = session->done(uid); !d) {
        stop = d.error();
        break;
      }
      ++marked;
    }
  }
  (void)session->close();
  ingest.summary();
  if (!json) {
    std::printf("imap %s: %zu unseen, %lld %s, %lld left unseen\n", ic.mailbox.c_str(),
                uids->size(), static_cast<long long>(marked),
                ic.move_to.empty() ? "marked seen" : ("moved to " + ic.move_to).c_str(),
                static_cast<long long>(left));
  }
  if (stop) return report(*stop);
  return failed > 0 || ingest.totals().refused > 0 ? kExitData : kExitOk;
}

}  // namespace

int cmd_dmarc(const Context& ctx, const Args& args) {
  if (args.empty()) return usage_error("dmarc: want ingest or fetch");
  const Args rest(args.begin() + 1, args.end());
  if (args[0] == "ingest") return cmd_ingest(ctx, rest);
  if (args[0] == "fetch") return cmd_fetch(ctx, rest);
  if (args[0] == "--help" || args[0] == "-h") {
    std::printf("%.*s\n", static_cast<int>(kUsage.size()), kUsage.data());
    return kExitOk;
  }
  return usage_error(fmt::format("dmarc: unknown subcommand {:?} (want ingest or fetch)", args[0]));
}

int cmd_report(const Context& ctx, const Args& args) {
  if (args.empty() || args[0] != "dmarc") {
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
      std::printf("%.*s\n", static_cast<int>(kReportUsage.size()), kReportUsage.data());
      return kExitOk;
    }
    return usage_error("report: want dmarc");
  }
  std::int64_t days = 7;
  std::string format = "table";
  for (std::size_t i = 1; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a == "--help" || a == "-h") {
      std::printf("%.*s\n", static_cast<int>(kReportUsage.size()), kReportUsage.data());
      return kExitOk;
    } else if (a == "--days" && i + 1 < args.size()) {
      try {
        days = std::stoll(args[++i]);
      } catch (const std::exception&) {
        days = 0;
      }
      if (days < 1) return usage_error("report dmarc: --days wants a positive number");
    } else if (a == "--format" && i + 1 < args.size()) {
      format = args[++i];
      if (format != "table" && format != "json" && format != "csv")
        return usage_error("report dmarc: --format wants table, json or csv");
    } else {
      return usage_error(fmt::format("report dmarc: unknown argument '{}'", a));
    }
  }
  const auto settings = settings_of(ctx);
  auto st = ctx.open_store();
  if (!st) return report(st.error());
  auto rs = store::load_ruleset(**st);
  if (!rs) return report(rs.error());
  const auto now = obs::now_utc();
  auto rows = (*st)->dmarc_sources(now - days * core::kDaySeconds);
  if (!rows) return report(rows.error());
  auto arrival = (*st)->dmarc_arrival();
  if (!arrival) return report(arrival.error());

  std::map<std::string, std::string> stream_of_ip;
  for (const auto& s : (*rs)->spec().streams) {
    if (!s.egress_ip.empty()) stream_of_ip.emplace(canonical_ip(s.egress_ip), s.name);
  }
  auto pct = [](std::int64_t n, std::int64_t d) {
    return d > 0 ? 100.0 * static_cast<double>(n) / static_cast<double>(d) : 0.0;
  };
  struct Row {
    const store::DmarcSourceRow* r;
    std::string stream;
    std::string flag;
  };
  std::vector<Row> out;
  int flagged = 0;
  for (const auto& r : *rows) {
    Row row{&r, "", ""};
    if (auto it = stream_of_ip.find(canonical_ip(r.source_ip)); it != stream_of_ip.end())
      row.stream = it->second;
    const auto failing = r.messages - r.dmarc_pass;
    // In double: the counts come from reports anyone can send (no int64 overflow to exploit).
    if (!row.stream.empty() &&
        static_cast<double>(r.dmarc_pass) * 100.0 <
            static_cast<double>(settings.egress_pass_percent) * static_cast<double>(r.messages)) {
      row.flag = fmt::format("egress below {}% pass", settings.egress_pass_percent);
    } else if (row.stream.empty() && failing >= settings.outside_fail_messages) {
      row.flag = fmt::format("outside IP: {} failing messages as you", failing);
    }
    if (!row.flag.empty()) ++flagged;
    out.push_back(std::move(row));
  }
  // Reports stopped arriving (incident 12: the report mailbox bounced them for weeks).
  std::string arrival_flag;
  const auto last = arrival->last_ingested;
  if (!last || *last < now - settings.no_report_days * core::kDaySeconds) {
    arrival_flag = last ? fmt::format("no DMARC report stored for {} days (the last on {})",
                                      (now - *last) / core::kDaySeconds, core::format_utc(*last))
                        : std::string("no DMARC report stored yet");
    ++flagged;
  }

  std::string text;
  if (format == "json") {
    for (const auto& row : out) {
      const auto& r = *row.r;
      text += fmt::format(
          "{{\"source_ip\": {}, \"stream\": {}, \"messages\": {}, \"dmarc_pass_percent\": {:.1f}, "
          "\"dkim_aligned_percent\": {:.1f}, \"spf_aligned_percent\": {:.1f}, \"reports\": {}, "
          "\"reporters\": [{}], \"domains\": [{}], \"flag\": {}}}\n",
          q(r.source_ip), row.stream.empty() ? "null" : q(row.stream), r.messages,
          pct(r.dmarc_pass, r.messages), pct(r.dkim_aligned, r.messages),
          pct(r.spf_aligned, r.messages), r.reports,
          [&] {
            std::string s;
            for (const auto& x : r.reporters) s += (s.empty() ? "" : ", ") + q(x);
            return s;
          }(),
          [&] {
            std::string s;
            for (const auto& x : r.domains) s += (s.empty() ? "" : ", ") + q(x);
            return s;
          }(),
          row.flag.empty() ? "null" : q(row.flag));
    }
    text += fmt::format(
        "{{\"summary\": {{\"days\": {}, \"sources\": {}, \"flagged\": {}, \"reports_stored\": {}, "
        "\"last_ingested\": {}, \"last_period_end\": {}, \"arrival\": {}}}}}\n",
        days, out.size(), flagged, arrival->reports, last ? q(core::format_utc(*last)) : "null",
        arrival->last_end ? q(core::format_utc(*arrival->last_end)) : "null",
        arrival_flag.empty() ? "null" : q(arrival_flag));
  } else if (format == "csv") {
    text =
        "source_ip,stream,messages,dmarc_pass_percent,dkim_aligned_percent,"
        "spf_aligned_percent,reports,reporters,flag\n";
    auto csv = [](std::string s) {
      s = core::utf8_clean(s);
      if (s.find_first_of(",\"\n") == std::string::npos) return s;
      std::string o = "\"";
      for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
      return o + "\"";
    };
    for (const auto& row : out) {
      const auto& r = *row.r;
      text +=
          fmt::format("{},{},{},{:.1f},{:.1f},{:.1f},{},{},{}\n", csv(r.source_ip), csv(row.stream),
                      r.messages, pct(r.dmarc_pass, r.messages), pct(r.dkim_aligned, r.messages),
                      pct(r.spf_aligned, r.messages), r.reports,
                      csv(fmt::format("{}", fmt::join(r.reporters, " "))), csv(row.flag));
    }
  } else {
    text = fmt::format("{:<39}  {:<10}  {:>8}  {:>6}  {:>6}  {:>6}  {:>7}  {}\n", "SOURCE_IP",
                       "STREAM", "MESSAGES", "PASS%", "DKIM%", "SPF%", "REPORTS", "REPORTERS");
    for (const auto& row : out) {
      const auto& r = *row.r;
      text +=
          fmt::format("{:<39}  {:<10}  {:>8}  {:>6.1f}  {:>6.1f}  {:>6.1f}  {:>7}  {}{}\n",
                      core::utf8_clean(r.source_ip), row.stream.empty() ? "-" : row.stream,
                      r.messages, pct(r.dmarc_pass, r.messages), pct(r.dkim_aligned, r.messages),
                      pct(r.spf_aligned, r.messages), r.reports,
                      core::utf8_clean(fmt::format("{}", fmt::join(r.reporters, ","))),
                      row.flag.empty() ? "" : "  ! " + row.flag);
    }
    text += fmt::format("{} source IPs over the last {} days, {} flagged; {} reports stored{}\n",
                        out.size(), days, flagged, arrival->reports,
                        arrival_flag.empty() ? "" : "\n! " + arrival_flag);
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  return flagged > 0 ? kExitFlagged : kExitOk;
}

}  // namespace rampart::sidecar
