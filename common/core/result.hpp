// The error vocabulary shared by every layer: what the caller must do, not where it came from.
// Pure; no I/O. Adapters map Errc to their protocol (SMFIS_*, policy actions, exit codes).
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace rampart {

enum class Errc : std::uint8_t {
  Temporary,  // retry later: store down, timeout -> 4xx / SMFIS_TEMPFAIL / exit 75
  Invalid,    // bad input from a peer: malformed policy request, bad XML -> refuse that input
  Config,     // operator error: bad rule, unknown key -> refuse to (re)load / exit 78
  Internal,   // broken invariant: a bug -> log loudly, tempfail / exit 70
};

struct Error {
  Errc code;
  std::string what;
};

template <class T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(Errc c, std::string what) {
  return tl::unexpected(Error{c, std::move(what)});
}

// Early return on error inside a function returning Result<...>:
//   RAMPART_TRY(value, expr);  // declares `value` = *expr, or returns expr's error
#define RAMPART_TRY(var, expr)                                      \
  auto var##_result_ = (expr);                                      \
  if (!var##_result_) return tl::unexpected(var##_result_.error()); \
  auto var = std::move(*var##_result_)

// Sysexits-style process exit status for an error (sidecar and --check-config).
constexpr int exit_code(Errc c) {
  switch (c) {
    case Errc::Temporary: return 75;  // EX_TEMPFAIL
    case Errc::Invalid: return 65;    // EX_DATAERR
    case Errc::Config: return 78;     // EX_CONFIG
    case Errc::Internal: return 70;   // EX_SOFTWARE
  }
  return 70;
}

}  // namespace rampart
