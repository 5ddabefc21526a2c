// The asynchronous MX resolver of rampart-policyd (and `rampart release`): libunbound, in its
// own thread, driven from a Boost.Asio io_context, with a TTL-honouring positive and negative
// cache in front. The adapter half: decoding and rules are in dns/wire.hpp (pure).
// It never blocks the io_context thread and never throws out of its callbacks.
#pragma once

#include <utility>  // before Asio: GCC 12 needs it (STYLE.md section 8)

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "dns/wire.hpp"

namespace rampart::dns {

enum class MxStatus : std::uint8_t {
  Ok,          // `hosts` holds the MX hosts, or (implicit) the domain itself from its A/AAAA
  NullMx,      // RFC 7505 null MX: the domain accepts no mail -> policyd REJECT 5.1.10
  NxDomain,    // the domain does not exist, or is no valid host name -> policyd REJECT 5.1.2
  NoMailHost,  // it exists, but no MX and no A/AAAA (or MX records naming only the root)
               //   -> policyd REJECT 5.1.2
  Temporary,   // SERVFAIL, timeout, malformed answer, resolver trouble -> policyd on_dns_error
};

// "ok", "nullmx", "nxdomain", "nomailhost", "temporary": for logs and counters.
std::string_view to_string(MxStatus status);

struct MxAnswer {
  MxStatus status = MxStatus::Temporary;
  std::vector<MxHost> hosts;    // Ok only: sorted by (preference, host), lower case, no final dot
  bool implicit = false;        // Ok from A/AAAA: hosts == {{0, domain}} (RFC 5321 §5.1)
  std::chrono::seconds ttl{0};  // how long this answer is cached (0: not cached)
  // For logs and reply texts, lower case but for DNS's own words: "null MX", "NXDOMAIN",
  // "invalid domain name", "no MX and no A/AAAA", "timed out after 2000 ms", "SERVFAIL",
  // "shutting down". Empty for an Ok answer with MX records.
  std::string detail;
};

struct ResolverOptions {
  // DNS servers to forward to: "127.0.0.1", "127.0.0.1:5353", "[::1]:5353", "::1"; they must
  // recurse (RD). Empty: the nameservers of /etc/resolv.conf.
  std::vector<std::string> servers;
  // Per resolve(): the whole chain (MX, then A and AAAA for an implicit MX). At least 1 ms.
  std::chrono::milliseconds timeout{2000};
  // Cache bound in domains; at the bound the oldest entry goes first. 0 disables the cache.
  std::size_t max_entries = 100000;
  // Cache lifetimes (dns/wire.hpp positive_ttl, negative_ttl): an Ok answer lives for its TTL,
  // at most max_ttl; an answer that makes the caller reject lives for its negative TTL, within
  // [min_negative_ttl, max_negative_ttl]. Temporary answers are never cached.
  std::chrono::seconds max_ttl{86400};
  std::chrono::seconds min_negative_ttl{30};
  std::chrono::seconds max_negative_ttl{3600};
};

// One per process (libunbound starts one thread for it). Every member is called on the thread
// that runs `io`, and `io` must be run by that one thread only (the libunbound pipe is waited on
// edge-triggered). The resolver must not outlive `io`.
class MxResolver {
 public:
  using Callback = std::function<void(std::shared_ptr<const MxAnswer>)>;

  // Errc::Config: a bad server string or option, libunbound refusing the configuration, an
  // unreadable /etc/resolv.conf. Errc::Temporary: libunbound cannot create its context (out of
  // memory or file descriptors).
  [[nodiscard]] static Result<std::unique_ptr<MxResolver>> create(boost::asio::io_context& io,
                                                                  ResolverOptions options);
  ~MxResolver();  // stop()
  MxResolver(const MxResolver&) = delete;
  MxResolver& operator=(const MxResolver&) = delete;

  // The cached, unexpired answer for `domain` (case-insensitive, trailing dot ignored), or
  // nullptr. Never blocks; on a hit allocates nothing beyond the shared_ptr copy. Counts a hit,
  // never a miss (resolve() counts that).
  std::shared_ptr<const MxAnswer> cached(std::string_view domain);

  // Looks `domain` up (case-insensitive, trailing dot ignored): from the cache when it can,
  // else through libunbound, sharing one lookup among concurrent calls for the same domain.
  // `done` runs on the io_context thread, never inside this call, exactly once (while the
  // io_context runs: a posted `done` dies unrun with it), and at the latest `timeout` after the
  // lookup started (a call that joins a running lookup gets its answer sooner). An invalid name
  // ("", "a..b", "[192.0.2.1]", > 253 characters) answers NxDomain "invalid domain name" without a
  // query. After stop(): Temporary "shutting down". `done` must not throw (it is called from a
  // posted handler).
  void resolve(std::string_view domain, Callback done);

  // Cancels every running lookup (their callbacks still run, with Temporary "shutting down"),
  // stops waiting on libunbound and releases it (joins its thread). Idempotent. The cache stays
  // readable.
  void stop();

  struct Stats {
    std::uint64_t hits = 0;      // answers served from the cache (cached() or resolve())
    std::uint64_t misses = 0;    // lookups started through libunbound (coalesced calls excluded)
    std::uint64_t timeouts = 0;  // lookups that ran out of time
    std::uint64_t errors = 0;    // other Temporary outcomes: SERVFAIL, REFUSED, malformed
                                 // answers, libunbound errors
  };
  Stats stats() const;

  struct Impl;  // resolver.cpp

 private:
  explicit MxResolver(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace rampart::dns
