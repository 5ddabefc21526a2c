// libFuzzer harness for the rules reader and compiler: arbitrary bytes through rules::parse()
// and, when they parse, RuleSet::compile() and the TOML writer, whose output must parse again.
// Must never crash, hang or leak; errors are fine.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/ruleset.hpp"
#include "rules/reader.hpp"
#include "rules/writer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = rampart::rules::parse(text, "fuzz.toml");
  if (!parsed) return 0;
  auto compiled = rampart::core::RuleSet::compile(std::move(parsed->spec));
  if (!compiled) return 0;
  const auto& rs = **compiled;
  (void)rs.find_exclusion(nullptr, "a@b.example.com");
  (void)rs.resolve_stream({25, "192.0.2.1", "x@example.net", "u"});
  // A compiled set written back out must read back and compile to the same rules.
  auto again = rampart::rules::parse(rampart::rules::to_toml(rs.spec()), "export.toml");
  if (!again) std::abort();
  auto recompiled = rampart::core::RuleSet::compile(std::move(again->spec));
  if (!recompiled || !((*recompiled)->spec() == rs.spec())) std::abort();
  return 0;
}
