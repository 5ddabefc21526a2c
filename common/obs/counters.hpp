// Decision counters: named event counts ("reject rule=yahoo-family"), thread-safe, cheap enough
// for milter and policy callbacks (one short critical section). Exposed later as metrics; for
// now summarised in the log at reload and shutdown.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace rampart::obs {

class Counters {
 public:
  void add(std::string_view key, std::uint64_t n = 1) {
    std::lock_guard lock(mu_);
    auto it = counts_.find(key);
    if (it == counts_.end()) it = counts_.emplace(std::string(key), 0).first;
    it->second += n;
  }
  std::map<std::string, std::uint64_t, std::less<>> snapshot() const {
    std::lock_guard lock(mu_);
    return counts_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::uint64_t, std::less<>> counts_;
};

}  // namespace rampart::obs
