// Build-time generator: writes rampart.toml(5) from the settings table, so the man page can
// never disagree with the parser or --print-defaults. Usage: rampart_man_gen VERSION OUT
#include <cstdio>

#include "config/config.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: rampart_man_gen VERSION OUTPUT\n");
    return 64;
  }
  std::FILE* out = std::fopen(argv[2], "w");
  if (out == nullptr) {
    std::perror(argv[2]);
    return 73;
  }
  const auto page = rampart::config::man_page(argv[1]);
  const bool ok = std::fwrite(page.data(), 1, page.size(), out) == page.size();
  return (std::fclose(out) == 0 && ok) ? 0 : 74;
}
