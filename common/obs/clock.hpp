// The wall clock the adapters read and pass into the pure core (which never reads a clock):
// UTC seconds since the epoch, the unit of core::UnixTime.
#pragma once

#include <chrono>
#include <cstdint>

namespace rampart::obs {

inline std::int64_t now_utc() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace rampart::obs
