// A flat, immutable-after-build hash table from DNS names (or addresses) to small values, with
// label-boundary suffix lookup in one right-to-left pass: the hot path for exclusion checks and
// MX-host-to-operator matching. Pure; no I/O, no allocation on lookup.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rampart::core {

class DomainTable {
 public:
  enum Match : std::uint8_t {
    Self = 1,        // the key itself matches ("example.com" matches example.com)
    Subdomains = 2,  // names under the key match ("a.example.com" matches example.com)
    SelfAndSubdomains = 3,
  };

  // Adds a normalised (lower-case, no trailing dot) key. Returns false, changing nothing, when
  // the key is already present (the first insertion wins).
  bool insert(std::string_view key, std::uint32_t value, Match match = SelfAndSubdomains);

  // Exact lookup; `name` may use any case and one trailing dot.
  std::optional<std::uint32_t> find(std::string_view name) const;

  // The most specific key that covers `name` per its Match flags, if any: for
  // "mx1.eu.example.com" it tries mx1.eu.example.com, eu.example.com, example.com, com.
  // `name` may use any case and one trailing dot; names longer than 253 octets never match.
  std::optional<std::uint32_t> find_covering(std::string_view name) const;

  std::size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::uint32_t offset = 0;  // into keys_
    std::uint16_t length = 0;  // 0 = empty slot
    std::uint8_t match = 0;
    std::uint32_t value = 0;
  };
  const Slot* lookup(std::uint64_t hash, const char* key, std::size_t len) const;
  void grow();

  std::vector<Slot> slots_;
  std::string keys_;
  std::size_t count_ = 0;
};

}  // namespace rampart::core
