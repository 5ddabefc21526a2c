// libFuzzer harness for core::json and the hold-queue readers of `rampart release`: arbitrary
// bytes as a JSON text (small bounds, so the depth and value limits are reached), as a
// `postqueue -j` line and as `postcat -e -h` output. Must never crash, hang or read past the
// buffer; a parsed tree must respect the bounds it was parsed under.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/json.hpp"
#include "core/release.hpp"

namespace {

namespace json = rampart::core::json;

// Walks the tree; returns the number of values and checks the depth bound.
std::size_t walk(const json::Value& v, std::size_t depth, std::size_t max_depth) {
  if (depth > max_depth + 1) std::abort();  // scalars sit one below the deepest container
  std::size_t n = 1;
  if (const auto* a = v.array()) {
    for (const auto& e : *a) n += walk(e, depth + 1, max_depth);
  } else if (const auto* m = v.members()) {
    for (const auto& e : *m) {
      n += walk(e.value, depth + 1, max_depth);
      if (v.find(e.key) == nullptr) std::abort();
    }
  } else if (v.type() == json::Type::Number) {
    if (!v.number()) std::abort();
  } else if (v.type() == json::Type::String) {
    if (v.string() == nullptr) std::abort();
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  json::Limits limits;
  limits.max_bytes = 4096;
  limits.max_depth = 8;
  limits.max_values = 256;
  if (auto v = json::parse(text, limits)) {
    if (size > limits.max_bytes) std::abort();
    if (walk(*v, 1, limits.max_depth) > limits.max_values) std::abort();
  } else if (v.error().code != rampart::Errc::Invalid || v.error().what.empty()) {
    std::abort();
  }
  if (auto m = rampart::core::parse_postqueue_line(text)) {
    // Each recipient is at least {"address":""} in the input.
    if (m->recipients.size() > size / 14) std::abort();
  } else if (m.error().code != rampart::Errc::Invalid) {
    std::abort();
  }
  const auto info = rampart::core::parse_postcat(text);
  for (const auto& h : info.stream_headers) (void)rampart::core::stream_header_name(h);
  return 0;
}
