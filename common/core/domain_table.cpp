// DomainTable: open addressing with linear probing; keys hashed right to left so every
// label-boundary suffix's hash falls out of one pass over the name (see domain_table.hpp). Pure.
#include "core/domain_table.hpp"

#include <array>
#include <cstring>

#include "core/text.hpp"

namespace rampart::core {
namespace {

constexpr std::uint64_t kFnvOffset = 1469598103934665603ULL;
constexpr std::uint64_t kFnvPrime = 1099511628211ULL;
constexpr std::size_t kMaxName = 253;

// Finaliser so that slot index bits depend on every input byte (FNV's low bits are weak).
constexpr std::uint64_t mix(std::uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

// Hash of a key read right to left; the running value after consuming the suffix s[i..] is
// that suffix's hash, which is what find_covering() relies on.
std::uint64_t hash_reversed(std::string_view key) {
  std::uint64_t h = kFnvOffset;
  for (std::size_t i = key.size(); i-- > 0;) {
    h ^= static_cast<unsigned char>(key[i]);
    h *= kFnvPrime;
  }
  return mix(h);
}

}  // namespace

const DomainTable::Slot* DomainTable::lookup(std::uint64_t hash, const char* key,
                                             std::size_t len) const {
  if (slots_.empty()) return nullptr;
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.length == 0) return nullptr;
    if (s.hash == hash && s.length == len && std::memcmp(keys_.data() + s.offset, key, len) == 0)
      return &s;
  }
}

void DomainTable::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.empty() ? 16 : old.size() * 2, Slot{});
  const std::size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.length == 0) continue;
    std::size_t i = s.hash & mask;
    while (slots_[i].length != 0) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

bool DomainTable::insert(std::string_view key, std::uint32_t value, Match match) {
  if (key.empty() || key.size() > kMaxName) return false;
  const std::uint64_t h = hash_reversed(key);
  if (lookup(h, key.data(), key.size()) != nullptr) return false;
  if ((count_ + 1) * 2 > slots_.size()) grow();  // load factor <= 1/2 keeps probes short
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = h & mask;
  while (slots_[i].length != 0) i = (i + 1) & mask;
  slots_[i] = Slot{h, static_cast<std::uint32_t>(keys_.size()),
                   static_cast<std::uint16_t>(key.size()), static_cast<std::uint8_t>(match), value};
  keys_.append(key);
  ++count_;
  return true;
}

std::optional<std::uint32_t> DomainTable::find(std::string_view name) const {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > kMaxName || count_ == 0) return std::nullopt;
  std::array<char, kMaxName> buf;
  for (std::size_t i = 0; i < name.size(); ++i) buf[i] = ascii_lower(name[i]);
  const std::string_view key{buf.data(), name.size()};
  const Slot* s = lookup(hash_reversed(key), key.data(), key.size());
  if (s == nullptr) return std::nullopt;
  return s->value;
}

std::optional<std::uint32_t> DomainTable::find_covering(std::string_view name) const {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  const std::size_t n = name.size();
  if (n == 0 || n > kMaxName || count_ == 0) return std::nullopt;
  // One right-to-left pass: fold case into buf and note the hash at every label start.
  std::array<char, kMaxName> buf;
  // Every position can start a "label" when the input is junk like "a....": size for the worst
  // case, not for valid names (the fuzzer found this).
  std::array<std::uint64_t, kMaxName> hashes;
  std::array<std::uint8_t, kMaxName> starts;
  std::size_t labels = 0;
  std::uint64_t h = kFnvOffset;
  for (std::size_t i = n; i-- > 0;) {
    const char c = ascii_lower(name[i]);
    buf[i] = c;
    h ^= static_cast<unsigned char>(c);
    h *= kFnvPrime;
    if (i == 0 || name[i - 1] == '.') {
      hashes[labels] = mix(h);
      starts[labels] = static_cast<std::uint8_t>(i);
      ++labels;
    }
  }
  // Most specific first: the whole name, then each parent.
  for (std::size_t k = labels; k-- > 0;) {
    const std::size_t start = starts[k];
    const Slot* s = lookup(hashes[k], buf.data() + start, n - start);
    if (s == nullptr) continue;
    const bool whole = start == 0;
    if ((whole && (s->match & Self) != 0) || (!whole && (s->match & Subdomains) != 0))
      return s->value;
  }
  return std::nullopt;
}

}  // namespace rampart::core
