// Corpus test for the DMARC aggregate report reader: every *.xml file under
// ../shared/corpus/dmarc, read in place (gz/zip/eml are the unpack layer's, JSON is TLS-RPT).
// Each is either parsed or refused with a reason; a parsed one must hold as many records as an
// independent count of <record> start tags in the raw bytes, and as many messages as the sum of
// the <count> values an independent regex finds. Prints one table row per file. Exit 0 pass,
// 1 fail, 77 when the corpus is absent.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "dmarc/parse.hpp"

namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Independent of the reader: start tags (any namespace prefix) and the numbers in <count>.
std::size_t count_records(const std::string& xml) {
  static const std::regex re(R"(<([A-Za-z_][\w.-]*:)?record[\s/>])");
  return static_cast<std::size_t>(
      std::distance(std::sregex_iterator(xml.begin(), xml.end(), re), std::sregex_iterator()));
}

std::int64_t sum_counts(const std::string& xml) {
  static const std::regex re(R"(<([A-Za-z_][\w.-]*:)?count>\s*(\d+)\s*</)");
  std::int64_t n = 0;
  for (auto it = std::sregex_iterator(xml.begin(), xml.end(), re); it != std::sregex_iterator();
       ++it) {
    n += std::stoll((*it)[2].str());
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: dmarc_corpus_test <corpus/dmarc>\n";
    return 2;
  }
  const fs::path dir = argv[1];
  if (!fs::is_directory(dir)) {
    std::cout << "skip: no DMARC corpus at " << dir << "\n";
    return 77;
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().extension() == ".xml") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  int failures = 0;
  int parsed = 0;
  int refused = 0;
  std::cout << std::left << std::setw(64) << "file" << std::setw(8) << "result" << std::right
            << std::setw(8) << "records" << std::setw(10) << "messages"
            << "  repairs / reason\n";
  for (const auto& f : files) {
    const std::string xml = read_file(f);
    rampart::dmarc::Repairs repairs;
    const auto r = rampart::dmarc::parse_report(xml, {}, &repairs);
    std::string name = fs::relative(f, dir).string();
    if (name.size() > 63) name = name.substr(0, 60) + "...";
    std::ostringstream row;
    row << std::left << std::setw(64) << name;
    if (r) {
      ++parsed;
      const auto want_records = count_records(xml);
      const auto want_messages = sum_counts(xml);
      const bool ok = r->records.size() == want_records && r->messages() == want_messages;
      row << std::setw(8) << (ok ? "parsed" : "MISMATCH") << std::right << std::setw(8)
          << r->records.size() << std::setw(10) << r->messages() << "  ";
      if (!ok) {
        ++failures;
        row << "independent count: " << want_records << " records, " << want_messages
            << " messages";
      }
      for (std::size_t i = 0; i < repairs.size(); ++i) row << (i ? "; " : "") << repairs[i];
    } else {
      ++refused;
      const bool ok = !r.error().what.empty();
      if (!ok) ++failures;
      row << std::setw(8) << (ok ? "refused" : "NOREASON") << std::right << std::setw(8) << "-"
          << std::setw(10) << "-"
          << "  " << r.error().what;
    }
    std::cout << row.str() << "\n";
  }
  std::cout << files.size() << " files: " << parsed << " parsed, " << refused << " refused, "
            << failures << " failures\n";
  if (files.empty()) {
    std::cout << "FAIL: no *.xml files under " << dir << "\n";
    return 1;
  }
  return failures == 0 ? 0 : 1;
}
