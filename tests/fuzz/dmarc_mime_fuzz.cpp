// libFuzzer harness for dmarc::unpack() and sniff(): arbitrary bytes as what arrives (XML, gzip,
// zip, an RFC 5322 message). Small limits, so every bound is reached. Must never crash, hang or
// read past the buffer; what comes out must respect the limits it was unpacked under.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dmarc/unpack.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  rampart::dmarc::UnpackLimits limits;
  limits.max_compressed = 256u << 10;
  limits.max_decompressed = 1u << 20;
  limits.max_total = 4u << 20;
  limits.max_depth = 4;
  limits.max_zip_entries = 16;
  limits.max_parts = 64;
  limits.max_header_bytes = 16u << 10;
  const auto kind = rampart::dmarc::sniff(bytes);
  const auto got = rampart::dmarc::unpack(bytes, "fuzz", limits);
  if (got.parts > limits.max_parts) std::abort();
  if (got.message != (kind == "message")) std::abort();
  std::size_t total = 0;
  for (const auto& d : got.documents) {
    // A document is the input itself, a decoded part of it (never longer), or inflated output.
    if (d.xml.size() > size && d.xml.size() > limits.max_decompressed) std::abort();
    if (!d.where.starts_with("fuzz")) std::abort();
    if (rampart::dmarc::sniff(d.xml) != "xml") std::abort();
    total += d.xml.size();
  }
  if (total > size * 8 + limits.max_total) std::abort();
  for (const auto& r : got.refused) {
    if (!r.where.starts_with("fuzz") || r.reason.empty()) std::abort();
  }
  return 0;
}
