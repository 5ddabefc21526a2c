// Loop closing (issue 5 point 6): what `rampart classify` writes back for the milter and the
// policy daemon to enforce, decided from what the Tally found and what the store holds, under
// the [feedback] settings. Pure: the caller reads the store, calls these, writes the results.
#pragma once

#include <string>
#include <vector>

#include "core/limits.hpp"
#include "core/reputation.hpp"
#include "core/rules.hpp"
#include "maillog/tally.hpp"

namespace rampart::maillog {

// Hard bounces of rules with suppress = "address" -> address suppressions (expiry from the
// bounce time). Nothing when suppress_addresses is off; a suppression that would already have
// expired at `now` is dropped.
std::vector<core::Suppression> address_suppressions(const std::vector<AddressHit>& hits,
                                                    const core::FeedbackSpec& fb,
                                                    core::UnixTime now);

// Domains whose suppress = "domain" replies over the window reach domain_replies -> domain
// suppressions. `totals`: per domain, the sum over the domain_days days ending with the newest
// day read (Store::domain_hits), day = the newest day it was hit.
std::vector<core::Suppression> domain_suppressions(const std::vector<core::DomainHit>& totals,
                                                   const core::FeedbackSpec& fb,
                                                   core::UnixTime now);

// Pause replies ([TSS04]) -> pause back-offs until the reply time + pause_hours. Skips one that
// would already be over at `now`, and one an active back-off already covers (a pause lasting at
// least as long). `active`: the store's back-offs active at `now`.
std::vector<core::Backoff> pause_backoffs(const std::vector<PauseHit>& pauses,
                                          const core::FeedbackSpec& fb,
                                          const std::vector<core::Backoff>& active,
                                          core::UnixTime now);

// Stream x operator days whose throttled + reject_reputation share of attempts reached
// backoff_percent over at least backoff_min_attempts -> a back-off at backoff_factor_percent
// until `at` + backoff_hours, where `at` is the last moment read of that day (`last_time` when
// the day is the newest one read, else the day's end). Skips attributions without a stream or an
// operator, back-offs that would be over at `now`, and pairs an active back-off already covers
// (at least as strict and as long); a back-off set from the command line is never replaced.
// `aggregates`: the stored rows of the days to judge.
std::vector<core::Backoff> share_backoffs(const std::vector<core::Aggregate>& aggregates,
                                          const core::FeedbackSpec& fb,
                                          const std::vector<core::Backoff>& active,
                                          core::UnixTime last_time, core::UnixTime now);

}  // namespace rampart::maillog
