// The MX resolver's adapter: libunbound in threaded async mode (its own resolver thread), its
// answer pipe waited on by an Asio stream_descriptor on the caller's io_context, one steady_timer
// per lookup, and the answer cache. libunbound calls back only from inside ub_process(), which
// runs on the io_context thread, so no lock is needed; user callbacks are always posted, never
// called from inside libunbound or resolve(). Nothing throws across the C callback.
#include "dns/resolver.hpp"

#include <unbound.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <iterator>
#include <list>
#include <unordered_map>

#include <fmt/format.h>

namespace rampart::dns {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using AnswerPtr = std::shared_ptr<const MxAnswer>;

std::string_view to_string(MxStatus status) {
  switch (status) {
    case MxStatus::Ok: return "ok";
    case MxStatus::NullMx: return "nullmx";
    case MxStatus::NxDomain: return "nxdomain";
    case MxStatus::NoMailHost: return "nomailhost";
    case MxStatus::Temporary: return "temporary";
  }
  return "temporary";
}

namespace {

// RFC 1035 §4.1.1 and RFC 6895 §2.3 response codes, by the names operators know.
std::string rcode_name(int rcode) {
  switch (rcode) {
    case 1: return "FORMERR";
    case 2: return "SERVFAIL";
    case 4: return "NOTIMP";
    case 5: return "REFUSED";
    default: return fmt::format("rcode {}", rcode);
  }
}
constexpr int k_rcode_noerror = 0;
constexpr int k_rcode_nxdomain = 3;

AnswerPtr make_answer(MxStatus status, std::string detail, std::chrono::seconds ttl = {},
                      std::vector<MxHost> hosts = {}, bool implicit = false) {
  auto a = std::make_shared<MxAnswer>();
  a->status = status;
  a->hosts = std::move(hosts);
  a->implicit = implicit;
  a->ttl = ttl;
  a->detail = std::move(detail);
  return a;
}

struct ResultFree {
  void operator()(ub_result* r) const { ub_resolve_free(r); }
};
using ResultPtr = std::unique_ptr<ub_result, ResultFree>;

// The negative TTL of a negative answer, from the SOA in the response (0 without one).
long long negative_answer_ttl(const ub_result* r) {
  if (r->answer_packet == nullptr || r->answer_len <= 0) return 0;
  const std::span<const std::uint8_t> message(static_cast<const std::uint8_t*>(r->answer_packet),
                                              static_cast<std::size_t>(r->answer_len));
  return soa_negative_ttl(message).value_or(0);
}

struct CtxDelete {
  void operator()(ub_ctx* c) const { ub_ctx_delete(c); }
};

}  // namespace

// The lookup state MxResolver::Impl holds (a named namespace: an anonymous one cannot be part of
// Impl, which has external linkage).
namespace resolver_impl {

struct Lookup;

// One libunbound query of a lookup; its address is the callback argument.
struct Query {
  Lookup* owner = nullptr;
  int id = 0;  // libunbound's async id while pending
  bool pending = false;
};

// What an A or AAAA query of the implicit-MX fallback said.
enum class AddressOutcome : std::uint8_t { Pending, NotAsked, Data, NoData, NxDomain, Failed };

// One running lookup of one domain, shared by every resolve() of that domain meanwhile.
struct Lookup {
  explicit Lookup(asio::io_context& io) : timer(io) {}
  MxResolver::Impl* impl = nullptr;
  std::string domain;  // normalised; the running map's key views it
  std::vector<MxResolver::Callback> waiters;
  asio::steady_timer timer;
  Query mx, a, aaaa;
  AddressOutcome a_outcome = AddressOutcome::NotAsked;
  AddressOutcome aaaa_outcome = AddressOutcome::NotAsked;
  long long negative_seen = -1;  // smallest negative-answer TTL seen, -1 = none
  std::string failure;           // detail of a failed A/AAAA query
  bool done = false;
};

}  // namespace resolver_impl

using resolver_impl::AddressOutcome;
using resolver_impl::Lookup;
using resolver_impl::Query;

extern "C" {
// libunbound's callback: runs inside ub_process(), on the io_context thread.
static void rampart_dns_on_result(void* arg, int err, struct ub_result* result) noexcept;
}

struct MxResolver::Impl : std::enable_shared_from_this<MxResolver::Impl> {
  Impl(asio::io_context& io_context, ResolverOptions opts)
      : io(io_context), options(std::move(opts)), fd(io_context) {
    rules.max_ttl = options.max_ttl;
    rules.min_negative_ttl = options.min_negative_ttl;
    rules.max_negative_ttl = options.max_negative_ttl;
  }
  ~Impl() { stop(); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  asio::io_context& io;
  ResolverOptions options;
  TtlRules rules;
  ub_ctx* ctx = nullptr;
  asio::posix::stream_descriptor fd;  // ub_fd(ctx): libunbound owns it, so released, never closed
  bool waiting = false;               // an async_wait on fd is outstanding
  bool stopped = false;
  std::unordered_map<std::string_view, std::shared_ptr<Lookup>> running;

  struct Entry {
    std::string domain;
    AnswerPtr answer;
    Clock::time_point expires;
  };
  std::list<Entry> entries;  // oldest first; the index's keys view entries' domains
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index;

  Stats counters;

  // --- cache --------------------------------------------------------------------------------

  AnswerPtr from_cache(std::string_view domain) {
    const auto it = index.find(domain);
    if (it == index.end()) return nullptr;
    if (Clock::now() >= it->second->expires) {
      const auto entry = it->second;
      index.erase(it);
      entries.erase(entry);
      return nullptr;
    }
    return it->second->answer;
  }

  void store(const std::string& domain, const AnswerPtr& answer) {
    if (options.max_entries == 0 || answer->ttl <= std::chrono::seconds{0}) return;
    const auto now = Clock::now();
    if (const auto it = index.find(domain); it != index.end()) {
      const auto entry = it->second;
      index.erase(it);
      entries.erase(entry);
    }
    // Oldest first: drop expired entries at the front, then whatever the bound requires.
    while (!entries.empty() &&
           (entries.front().expires <= now || entries.size() >= options.max_entries)) {
      index.erase(entries.front().domain);
      entries.pop_front();
    }
    entries.push_back(Entry{domain, answer, now + answer->ttl});
    index.emplace(entries.back().domain, std::prev(entries.end()));
  }

  // --- libunbound's pipe ----------------------------------------------------------------------

  void arm() {
    if (waiting || stopped || ctx == nullptr) return;
    waiting = true;
    fd.async_wait(asio::posix::descriptor_base::wait_read,
                  [weak = weak_from_this()](const boost::system::error_code& ec) {
                    const auto self = weak.lock();
                    if (!self) return;
                    self->waiting = false;
                    if (ec || self->stopped) return;
                    self->process();
                  });
  }

  void process() {
    const int rc = ub_process(ctx);  // calls rampart_dns_on_result for each answer
    if (rc != UB_NOERROR) {
      // The pipe to libunbound's thread broke: nothing more will come back. Fail what is running;
      // each later lookup fails the same way when ub_resolve_async refuses it.
      abort_all(fmt::format("resolver error: {}", ub_strerror(rc)), true);
      return;
    }
    if (!running.empty()) arm();
  }

  // --- lookups --------------------------------------------------------------------------------

  void post_answer(MxResolver::Callback done, AnswerPtr answer) {
    asio::post(io, [done = std::move(done), answer = std::move(answer)]() { done(answer); });
  }

  void resolve(std::string_view domain, MxResolver::Callback done) {
    std::array<char, k_max_domain> buf{};
    const auto name = normalize_domain(domain, buf);
    if (!name) {
      static const AnswerPtr invalid = make_answer(MxStatus::NxDomain, "invalid domain name");
      post_answer(std::move(done), invalid);
      return;
    }
    if (auto hit = from_cache(*name)) {
      ++counters.hits;
      post_answer(std::move(done), std::move(hit));
      return;
    }
    if (stopped || ctx == nullptr) {
      post_answer(std::move(done), make_answer(MxStatus::Temporary, "shutting down"));
      return;
    }
    if (const auto it = running.find(*name); it != running.end()) {
      it->second->waiters.push_back(std::move(done));
      return;
    }
    ++counters.misses;
    const auto lookup = std::make_shared<Lookup>(io);  // kept alive here even if it fails at once
    lookup->impl = this;
    lookup->domain.assign(*name);
    lookup->waiters.push_back(std::move(done));
    running.emplace(lookup->domain, lookup);
    lookup->timer.expires_after(options.timeout);
    lookup->timer.async_wait([weak_impl = weak_from_this(), weak_lookup = std::weak_ptr(lookup)](
                                 const boost::system::error_code& ec) {
      if (ec) return;  // cancelled: the lookup finished or the resolver stopped
      const auto self = weak_impl.lock();
      const auto l = weak_lookup.lock();
      if (!self || !l || l->done) return;
      ++self->counters.timeouts;
      self->finish(
          *l, make_answer(MxStatus::Temporary,
                          fmt::format("timed out after {} ms", self->options.timeout.count())));
    });
    if (const int rc = start(*lookup, lookup->mx, k_type_mx); rc != UB_NOERROR) {
      fail(*lookup, fmt::format("resolver error: {}", ub_strerror(rc)));
      return;
    }
    arm();
  }

  int start(Lookup& l, Query& q, int type) {
    q.owner = &l;
    q.pending = true;
    int id = 0;
    const int rc =
        ub_resolve_async(ctx, l.domain.c_str(), type, k_class_in, &q, &rampart_dns_on_result, &id);
    if (rc != UB_NOERROR) {
      q.pending = false;
      return rc;
    }
    q.id = id;
    return UB_NOERROR;
  }

  void cancel_queries(Lookup& l) {
    for (Query* q : {&l.mx, &l.a, &l.aaaa}) {
      // In threaded mode ub_cancel only marks the query: libunbound's thread drops its answer
      // and the callback never runs.
      if (q->pending && ctx != nullptr) (void)ub_cancel(ctx, q->id);
      q->pending = false;
    }
  }

  // Ends a lookup: caches the answer, hands it to every waiter, forgets the lookup. `l` may be
  // destroyed on return.
  void finish(Lookup& l, AnswerPtr answer) {
    l.done = true;
    cancel_queries(l);
    l.timer.cancel();
    store(l.domain, answer);
    auto waiters = std::move(l.waiters);
    std::shared_ptr<Lookup> keep;
    if (const auto it = running.find(l.domain); it != running.end() && it->second.get() == &l) {
      keep = std::move(it->second);
      running.erase(it);
    }
    for (auto& w : waiters) post_answer(std::move(w), answer);
  }

  void fail(Lookup& l, std::string detail) {
    ++counters.errors;
    finish(l, make_answer(MxStatus::Temporary, std::move(detail)));
  }

  void abort_all(const std::string& detail, bool count_errors) {
    auto lookups = std::move(running);
    running.clear();
    for (auto& [name, l] : lookups) {
      if (count_errors) ++counters.errors;
      l->done = true;
      cancel_queries(*l);
      l->timer.cancel();
      const auto answer = make_answer(MxStatus::Temporary, detail);
      for (auto& w : l->waiters) post_answer(std::move(w), answer);
      l->waiters.clear();
    }
  }

  void stop() {
    if (stopped) return;
    stopped = true;
    abort_all("shutting down", false);
    if (ctx != nullptr) {
      boost::system::error_code ignored;
      fd.cancel(ignored);
      if (fd.is_open()) (void)fd.release();
      ub_ctx_delete(ctx);  // stops and joins libunbound's thread, closes its pipes
      ctx = nullptr;
    }
  }

  // --- answers (called from rampart_dns_on_result) -------------------------------------------

  void on_result(Query& q, int err, const ub_result* r) {
    Lookup& l = *q.owner;
    if (l.done) return;
    if (&q == &l.mx) {
      on_mx(l, err, r);
    } else {
      on_address(l, &q == &l.a ? l.a_outcome : l.aaaa_outcome, err, r);
    }
  }

  void note_negative_ttl(Lookup& l, const ub_result* r) {
    const long long t = negative_answer_ttl(r);
    l.negative_seen = l.negative_seen < 0 ? t : std::min(l.negative_seen, t);
  }

  void on_mx(Lookup& l, int err, const ub_result* r) {
    if (err != 0 || r == nullptr) {
      return fail(l, fmt::format("resolver error: {}", ub_strerror(err)));
    }
    if (r->bogus != 0) return fail(l, "DNSSEC bogus");
    if (r->rcode == k_rcode_nxdomain || r->nxdomain != 0) {
      return finish(l, make_answer(MxStatus::NxDomain, "NXDOMAIN",
                                   negative_ttl(negative_answer_ttl(r), rules)));
    }
    if (r->rcode != k_rcode_noerror) return fail(l, rcode_name(r->rcode));
    if (r->havedata != 0 && r->data != nullptr && r->len != nullptr) {
      std::vector<std::span<const std::uint8_t>> rdatas;
      for (std::size_t i = 0; r->data[i] != nullptr; ++i) {
        const int len = r->len[i] < 0 ? 0 : r->len[i];
        rdatas.emplace_back(reinterpret_cast<const std::uint8_t*>(r->data[i]),
                            static_cast<std::size_t>(len));
      }
      auto set = decode_mx_set(rdatas);
      switch (set.kind) {
        case MxSetKind::Hosts:
          return finish(
              l, make_answer(MxStatus::Ok, "", positive_ttl(r->ttl, rules), std::move(set.hosts)));
        case MxSetKind::NullMx:
          return finish(l, make_answer(MxStatus::NullMx, "null MX", negative_ttl(r->ttl, rules)));
        case MxSetKind::OnlyRoot:
          return finish(l, make_answer(MxStatus::NoMailHost, "MX names only the root",
                                       negative_ttl(r->ttl, rules)));
        case MxSetKind::Malformed: return fail(l, "malformed MX answer");
      }
      return fail(l, "malformed MX answer");
    }
    // NOERROR without MX records: RFC 5321 §5.1, the domain's own address is its implicit MX.
    note_negative_ttl(l, r);
    for (auto [q, outcome] : {std::pair{&l.a, &l.a_outcome}, std::pair{&l.aaaa, &l.aaaa_outcome}}) {
      *outcome = AddressOutcome::Pending;
      if (const int rc = start(l, *q, q == &l.a ? k_type_a : k_type_aaaa); rc != UB_NOERROR) {
        *outcome = AddressOutcome::Failed;
        l.failure = fmt::format("resolver error: {}", ub_strerror(rc));
      }
    }
    settle_address(l);
  }

  void on_address(Lookup& l, AddressOutcome& outcome, int err, const ub_result* r) {
    if (err != 0 || r == nullptr) {
      outcome = AddressOutcome::Failed;
      l.failure = fmt::format("resolver error: {}", ub_strerror(err));
    } else if (r->bogus != 0) {
      outcome = AddressOutcome::Failed;
      l.failure = "DNSSEC bogus";
    } else if (r->rcode == k_rcode_nxdomain || r->nxdomain != 0) {
      outcome = AddressOutcome::NxDomain;
      note_negative_ttl(l, r);
    } else if (r->rcode != k_rcode_noerror) {
      outcome = AddressOutcome::Failed;
      l.failure = rcode_name(r->rcode);
    } else if (r->havedata != 0) {
      // One address family is enough to deliver to: answer now, cancel the other query.
      outcome = AddressOutcome::Data;
      return finish(l, make_answer(MxStatus::Ok, "implicit MX", positive_ttl(r->ttl, rules),
                                   {MxHost{0, l.domain}}, true));
    } else {
      outcome = AddressOutcome::NoData;
      note_negative_ttl(l, r);
    }
    settle_address(l);
  }

  // Once both address queries have answered without data: fail, NXDOMAIN or no mail host.
  void settle_address(Lookup& l) {
    const auto outcomes = {l.a_outcome, l.aaaa_outcome};
    for (const auto o : outcomes) {
      if (o == AddressOutcome::Pending) return;
    }
    for (const auto o : outcomes) {
      if (o == AddressOutcome::Failed) return fail(l, l.failure);  // when in doubt, 4xx
    }
    const auto ttl = negative_ttl(l.negative_seen, rules);
    for (const auto o : outcomes) {
      // The MX query said the name exists; it vanished since. Believe the newer answer.
      if (o == AddressOutcome::NxDomain)
        return finish(l, make_answer(MxStatus::NxDomain, "NXDOMAIN", ttl));
    }
    finish(l, make_answer(MxStatus::NoMailHost, "no MX and no A/AAAA", ttl));
  }
};

extern "C" {
static void rampart_dns_on_result(void* arg, int err, struct ub_result* result) noexcept {
  ResultPtr owned(result);
  auto* q = static_cast<Query*>(arg);
  if (q == nullptr || q->owner == nullptr) return;
  q->pending = false;
  q->id = 0;
  try {
    q->owner->impl->on_result(*q, err, owned.get());
  } catch (...) {
    // Nothing crosses into C. The lookup stays running and its timer ends it (Temporary).
  }
}
}

MxResolver::MxResolver(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

MxResolver::~MxResolver() {
  if (impl_) impl_->stop();
}

Result<std::unique_ptr<MxResolver>> MxResolver::create(asio::io_context& io,
                                                       ResolverOptions options) {
  if (options.timeout < std::chrono::milliseconds{1}) {
    return fail(Errc::Config, "dns: the lookup timeout must be at least 1 ms");
  }
  if (options.max_ttl.count() < 0 || options.min_negative_ttl.count() < 0 ||
      options.min_negative_ttl > options.max_negative_ttl) {
    return fail(Errc::Config,
                "dns: cache lifetimes must not be negative, and min_negative_ttl <= "
                "max_negative_ttl");
  }
  std::vector<std::string> forwarders;
  for (const auto& server : options.servers) {
    auto f = forwarder_address(server);
    if (!f) return tl::unexpected(f.error());
    forwarders.push_back(std::move(*f));
  }

  std::unique_ptr<ub_ctx, CtxDelete> ctx(ub_ctx_create());
  if (!ctx) return fail(Errc::Temporary, "dns: cannot create the libunbound context");
  const auto refused = [](std::string_view what, int rc) {
    return fail(Errc::Config, fmt::format("dns: libunbound refuses {}: {}", what, ub_strerror(rc)));
  };
  // Threads, not fork: the answers come back over a pipe we wait on (ub_fd).
  if (const int rc = ub_ctx_async(ctx.get(), 1); rc != UB_NOERROR) return refused("async", rc);
  // Settings beyond libunbound's defaults:
  // - do-not-query-localhost: loopback servers (a local unbound, the lab) are the common case;
  //   libunbound already asks them, unbound.conf's default does not: said explicitly.
  // - module-config: no DNSSEC validation: no trust anchor, and the answers only pick an operator.
  // - local-zone: libunbound answers RFC 6761 special-use names itself (NXDOMAIN for all of
  //   .test); the lab and staging setups serve .test domains, so a transparent zone sends those
  //   to the servers ("nodefault" would say it better, but only unbound.conf's parser knows it).
  // - outgoing-range: libunbound opens at most 16 UDP sockets (config_create_forlib), one per
  //   query in flight, and a query we gave up on (ub_cancel) keeps one while libunbound retries.
  //   16 lookups of domains whose servers never answer (common in bad lists) then held every new
  //   lookup ~1.3 s or past its timeout, though the forwarder answers it at once (measured in the
  //   lab: tests/lab/dns_test.sh). 256 stays well inside the default 1024 file descriptors.
  const std::pair<const char*, const char*> settings[] = {
      {"do-not-query-localhost:", "no"},
      {"module-config:", "iterator"},
      {"local-zone:", "test. transparent"},
      {"outgoing-range:", "256"},
  };
  for (const auto& [key, value] : settings) {
    if (const int rc = ub_ctx_set_option(ctx.get(), key, value); rc != UB_NOERROR) {
      return refused(fmt::format("{} {}", key, value), rc);
    }
  }
  if (forwarders.empty()) {
    if (const int rc = ub_ctx_resolvconf(ctx.get(), nullptr); rc != UB_NOERROR) {
      return refused("/etc/resolv.conf", rc);
    }
  }
  for (const auto& f : forwarders) {
    if (const int rc = ub_ctx_set_fwd(ctx.get(), f.c_str()); rc != UB_NOERROR) {
      return refused(fmt::format("forwarder {:?}", f), rc);
    }
  }

  auto impl = std::make_shared<Impl>(io, std::move(options));
  boost::system::error_code ec;
  impl->fd.assign(ub_fd(ctx.get()), ec);
  if (ec) {
    return fail(Errc::Temporary,
                fmt::format("dns: cannot wait on libunbound's descriptor: {}", ec.message()));
  }
  impl->ctx = ctx.release();
  return std::unique_ptr<MxResolver>(new MxResolver(std::move(impl)));
}

std::shared_ptr<const MxAnswer> MxResolver::cached(std::string_view domain) {
  std::array<char, k_max_domain> buf{};
  const auto name = normalize_domain(domain, buf);
  if (!name) return nullptr;
  auto hit = impl_->from_cache(*name);
  if (hit) ++impl_->counters.hits;
  return hit;
}

void MxResolver::resolve(std::string_view domain, Callback done) {
  impl_->resolve(domain, std::move(done));
}

void MxResolver::stop() { impl_->stop(); }

MxResolver::Stats MxResolver::stats() const { return impl_->counters; }

}  // namespace rampart::dns
