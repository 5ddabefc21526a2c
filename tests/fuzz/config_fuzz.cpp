// libFuzzer harness for rampart_config: parse() must never crash, hang or leak on any bytes, and
// must either succeed or fail with Errc::Config (never Internal: the defaults are fixed).
// Seeds: tests/data/fuzz/rampart_config_fuzz/.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto got = rampart::config::parse(text, "fuzz.toml");
  if (!got && got.error().code != rampart::Errc::Config) std::abort();
  if (got) {
    // Every accessor must work on whatever parsed.
    for (const auto& s : rampart::config::settings()) {
      switch (s.type) {
        case rampart::config::Type::String: (void)got->string(s.table, s.key); break;
        case rampart::config::Type::Integer: (void)got->integer(s.table, s.key); break;
        case rampart::config::Type::Boolean: (void)got->boolean(s.table, s.key); break;
        case rampart::config::Type::Duration: (void)got->duration(s.table, s.key); break;
        case rampart::config::Type::StringList: (void)got->list(s.table, s.key); break;
        case rampart::config::Type::Size: (void)got->size(s.table, s.key); break;
      }
    }
  }
  return 0;
}
