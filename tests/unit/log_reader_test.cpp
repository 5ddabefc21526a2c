// Tests for the log-reading adapter (sidecar/classify/log_reader): plain, gzip'd and piped logs,
// offsets and identity, and the tail -F follower driven with zero waits (no sleeps). Works in a
// fresh temporary directory per case; gzip files are written here with zlib.
#include "classify/log_reader.hpp"

#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace fs = std::filesystem;
using rampart::logreader::Follower;
using rampart::logreader::Line;
using rampart::logreader::LogReader;
using rampart::logreader::Options;

namespace {

// A fresh directory, removed with everything in it at the end of the case.
struct TempDir {
  fs::path dir;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "rampart-logreader-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return (dir / name).string(); }
};

void write_file(const std::string& path, const std::string& bytes, bool append = false) {
  std::ofstream out(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc));
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// One gzip member (RFC 1952) holding `bytes`.
std::string gzip(const std::string& bytes) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, static_cast<uLong>(bytes.size())) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

struct Got {
  std::string text;
  std::int64_t offset;
  std::int64_t end;
  bool overlong;
};

// Every line until nullopt; REQUIREs no error.
std::vector<Got> read_all(LogReader& r) {
  std::vector<Got> out;
  for (;;) {
    auto l = r.next();
    REQUIRE_MESSAGE(l.has_value(), l.error().what);
    if (!*l) return out;
    out.push_back({std::string((*l)->text), (*l)->offset, (*l)->end, (*l)->overlong});
  }
}

LogReader must_open(const std::string& path, const Options& opts = {}) {
  auto r = LogReader::open(path, opts);
  REQUIRE_MESSAGE(r.has_value(), r.error().what);
  return std::move(*r);
}

std::optional<std::string> must_identity(LogReader& r) {
  auto id = r.identity();
  REQUIRE_MESSAGE(id.has_value(), id.error().what);
  return *id;
}

// Lines of varying length (1..~300 bytes), `total` bytes in all, every one ending in \n.
std::string generated(std::size_t total) {
  std::string s;
  s.reserve(total + 400);
  unsigned x = 12345;
  while (s.size() < total) {
    x = x * 1103515245U + 12345U;
    const std::size_t len = (x >> 16) % 300;
    s += "Jun  9 08:50:20 mx postfix/smtp[" + std::to_string(x % 99991) + "]: ";
    s.append(len, static_cast<char>('a' + x % 26));
    s += '\n';
  }
  return s;
}

// Checks that `r` yields exactly the lines of `content`, with their offsets.
void expect_lines_of(LogReader& r, const std::string& content) {
  std::size_t at = 0;
  std::size_t count = 0;
  bool ok = true;
  for (;;) {
    auto l = r.next();
    REQUIRE_MESSAGE(l.has_value(), l.error().what);
    if (!*l) break;
    const std::size_t nl = content.find('\n', at);
    REQUIRE(nl != std::string::npos);
    const std::string_view want(content.data() + at, nl - at);
    if ((*l)->text != want || (*l)->offset != static_cast<std::int64_t>(at) ||
        (*l)->end != static_cast<std::int64_t>(nl + 1)) {
      ok = false;
      break;
    }
    at = nl + 1;
    ++count;
  }
  CHECK_MESSAGE(ok, "line ", count, " differs");
  CHECK(at == content.size());
  CHECK(r.offset() == static_cast<std::int64_t>(content.size()));
}

}  // namespace

TEST_CASE("LogReader::next: plain file lines, offsets and a CRLF line") {
  TempDir tmp;
  const std::string path = tmp / "mail.log";
  write_file(path, "first\n\nthird line\r\nfourth\n");
  auto r = must_open(path);
  CHECK_FALSE(r.compressed());
  CHECK(r.path() == path);
  const auto got = read_all(r);
  struct Want {
    const char* text;
    std::int64_t offset, end;
  };
  const Want want[] = {{"first", 0, 6}, {"", 6, 7}, {"third line\r", 7, 19}, {"fourth", 19, 26}};
  REQUIRE(got.size() == std::size(want));
  for (std::size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i].text == want[i].text);
    CHECK(got[i].offset == want[i].offset);
    CHECK(got[i].end == want[i].end);
    CHECK_FALSE(got[i].overlong);
  }
  CHECK(r.offset() == 26);
  CHECK(r.pending_tail() == 0);
}

TEST_CASE("LogReader::next: a partial last line waits for its newline") {
  TempDir tmp;
  const std::string path = tmp / "mail.log";
  write_file(path, "one\ntw");
  auto r = must_open(path);
  auto got = read_all(r);
  REQUIRE(got.size() == 1);
  CHECK(got[0].text == "one");
  CHECK(r.offset() == 4);
  CHECK(r.pending_tail() == 2);
  auto again = r.next();  // still nothing: the writer has not finished the line
  REQUIRE(again.has_value());
  CHECK_FALSE(again->has_value());

  write_file(path, "o\nthr", true);  // the writer goes on; the same reader picks it up
  got = read_all(r);
  REQUIRE(got.size() == 1);
  CHECK(got[0].text == "two");
  CHECK(got[0].offset == 4);
  CHECK(got[0].end == 8);
  CHECK(r.pending_tail() == 3);

  // A later run resumes at the saved offset.
  write_file(path, "ee\n", true);
  auto resumed = must_open(path);
  auto skipped = resumed.skip_to(8);
  REQUIRE(skipped.has_value());
  CHECK(*skipped);
  got = read_all(resumed);
  REQUIRE(got.size() == 1);
  CHECK(got[0].text == "three");
  CHECK(got[0].offset == 8);
  CHECK(got[0].end == 14);
}

TEST_CASE("LogReader::next: a final line without newline is returned when content is complete") {
  TempDir tmp;
  const std::string path = tmp / "mail.log";
  write_file(path, "a\nlast");
  struct Case {
    std::string label;
    std::string file;
    bool final_partial;
  };
  write_file(tmp / "mail.log.gz", gzip("a\nlast"));
  const Case cases[] = {
      {"plain, final_partial", path, true},
      {"gzip", tmp / "mail.log.gz", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    Options opts;
    opts.final_partial = c.final_partial;
    auto r = must_open(c.file, opts);
    const auto got = read_all(r);
    REQUIRE(got.size() == 2);
    CHECK(got[1].text == "last");
    CHECK(got[1].offset == 2);
    CHECK(got[1].end == 6);
    CHECK(r.pending_tail() == 0);
  }
}

TEST_CASE("LogReader::next: an overlong line is cut, flagged and skipped to its newline") {
  TempDir tmp;
  const std::size_t big = 2 * 1024 * 1024;
  std::string content = "first\n";
  std::string huge(big, 'x');
  huge[0] = 'S';
  content += huge + "\nafter\n";
  content += std::string(64 * 1024, 'y') + "\n";  // exactly max_line: whole, not overlong
  content += "tail\n";
  write_file(tmp / "big.log", content);
  write_file(tmp / "big.log.gz", gzip(content));
  for (const std::string name : {"big.log", "big.log.gz"}) {
    CAPTURE(name);
    Options opts;
    opts.max_line = 64 * 1024;
    auto r = must_open(tmp / name, opts);
    const auto got = read_all(r);
    REQUIRE(got.size() == 5);
    CHECK(got[0].text == "first");
    CHECK(got[1].overlong);
    CHECK(got[1].text.size() == opts.max_line);
    CHECK(got[1].text == huge.substr(0, opts.max_line));
    CHECK(got[1].offset == 6);
    CHECK(got[1].end == static_cast<std::int64_t>(6 + big + 1));
    CHECK(got[2].text == "after");
    CHECK_FALSE(got[2].overlong);
    CHECK(got[2].offset == got[1].end);
    CHECK(got[3].text.size() == 64 * 1024);
    CHECK_FALSE(got[3].overlong);
    CHECK(got[4].text == "tail");
    CHECK(got[4].end == static_cast<std::int64_t>(content.size()));
    CHECK(r.offset() == static_cast<std::int64_t>(content.size()));
  }
}

TEST_CASE("LogReader::next: an unfinished overlong last line is not consumed") {
  TempDir tmp;
  const std::string path = tmp / "mail.log";
  write_file(path, "a\n" + std::string(100, 'z'));
  Options opts;
  opts.max_line = 10;
  auto r = must_open(path, opts);
  auto got = read_all(r);
  REQUIRE(got.size() == 1);
  CHECK(r.offset() == 2);
  CHECK(r.pending_tail() == 100);
  write_file(path, "zz\nb\n", true);
  got = read_all(r);
  REQUIRE(got.size() == 2);
  CHECK(got[0].text == std::string(10, 'z'));
  CHECK(got[0].overlong);
  CHECK(got[0].offset == 2);
  CHECK(got[0].end == 105);
  CHECK(got[1].text == "b");
  CHECK(got[1].offset == 105);
}

TEST_CASE("LogReader::next: lines across many buffer refills, plain and gzip") {
  TempDir tmp;
  const std::string content = generated(5 * 1024 * 1024 + 777);
  write_file(tmp / "gen.log", content);
  // Two members: the boundary falls inside a line.
  const std::size_t cut = content.size() / 3 + 5;
  write_file(tmp / "gen.log.gz", gzip(content.substr(0, cut)) + gzip(content.substr(cut)));
  for (const std::string name : {"gen.log", "gen.log.gz"}) {
    CAPTURE(name);
    auto r = must_open(tmp / name);
    expect_lines_of(r, content);
  }
}

// Every line until nullopt, through next_chunk(): the chunks split into lines as a caller does
// (a line over max_line is overlong, cut to its first max_line bytes).
std::vector<Got> read_all_chunks(LogReader& r, std::size_t* chunks = nullptr) {
  std::vector<Got> out;
  rampart::logreader::Chunk spare;
  for (;;) {
    auto c = r.next_chunk(std::move(spare));
    REQUIRE_MESSAGE(c.has_value(), c.error().what);
    if (!*c) return out;
    if (chunks != nullptr) ++*chunks;
    auto& ch = **c;
    REQUIRE_FALSE(ch.text.empty());
    if (ch.overlong) {
      out.push_back({std::string(ch.text), ch.offset, ch.end, true});
    } else {
      std::size_t at = 0;
      while (at < ch.text.size()) {
        const auto nl = ch.text.find('\n', at);
        const auto len = (nl == std::string_view::npos ? ch.text.size() : nl) - at;
        const auto offset = ch.offset + static_cast<std::int64_t>(at);
        const auto end =
            offset + static_cast<std::int64_t>(len) + (nl == std::string_view::npos ? 0 : 1);
        const bool over = len > r.max_line();
        out.push_back(
            {std::string(ch.text.substr(at, over ? r.max_line() : len)), offset, end, over});
        at += len + 1;
      }
      CHECK(out.back().end == ch.end);
    }
    spare = std::move(ch);
  }
}

bool same_lines(const std::vector<Got>& a, const std::vector<Got>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].text != b[i].text || a[i].offset != b[i].offset || a[i].end != b[i].end ||
        a[i].overlong != b[i].overlong)
      return false;
  }
  return true;
}

TEST_CASE("LogReader::next_chunk: the same lines, offsets and identity as next()") {
  TempDir tmp;
  struct Case {
    std::string name;
    std::string content;
    std::size_t max_line;
    bool final_partial;
  };
  std::string overlong = "first\n" + std::string(2 * 1024 * 1024, 'x') + "\nafter\n" +
                         std::string(64 * 1024, 'y') + "\n" + std::string(64 * 1024 + 1, 'z') +
                         "\n\n\r\nend\r\n";
  const std::vector<Case> cases = {
      {"generated", generated(5 * 1024 * 1024 + 777), 64 * 1024, false},
      {"overlong", overlong, 64 * 1024, false},
      {"small max_line", generated(300 * 1024), 100, false},
      {"first line overlong", std::string(200, 'q') + "\nb\n", 100, false},
      {"partial last line", "a\nbb\nccc", 64 * 1024, false},
      {"partial last line, complete", "a\nbb\nccc", 64 * 1024, true},
      {"one line, no newline", "only", 64 * 1024, true},
      {"empty lines", "\n\n\nx\n\n", 64 * 1024, false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    write_file(tmp / "c.log", c.content);
    write_file(tmp / "c.log.gz", gzip(c.content));
    for (const std::string name : {"c.log", "c.log.gz"}) {
      CAPTURE(name);
      Options opts;
      opts.max_line = c.max_line;
      opts.final_partial = c.final_partial;
      auto by_line = must_open(tmp / name, opts);
      auto by_chunk = must_open(tmp / name, opts);
      const auto want = read_all(by_line);
      std::size_t chunks = 0;
      const auto got = read_all_chunks(by_chunk, &chunks);
      CHECK(same_lines(want, got));
      CHECK(by_chunk.offset() == by_line.offset());
      CHECK(by_chunk.pending_tail() == by_line.pending_tail());
      CHECK(must_identity(by_chunk) == must_identity(by_line));
      // A chunk holds many lines: a 5 MiB log is some twenty chunks of up to 256 KiB, not
      // thousands.
      if (c.name == "generated") CHECK(chunks < 30);
    }
  }
}

TEST_CASE("LogReader::next_chunk: after skip_to, after next(), and as a file grows") {
  TempDir tmp;
  const std::string path = tmp / "mail.log";
  const std::string content = generated(3 * 1024 * 1024);
  const auto third = static_cast<std::int64_t>(content.find('\n', content.size() / 3) + 1);
  write_file(path, content);
  auto r = must_open(path);
  REQUIRE(r.skip_to(third).value());
  auto l = r.next();
  REQUIRE(l.has_value());
  REQUIRE(l->has_value());
  CHECK((*l)->offset == third);
  auto rest = read_all_chunks(r);
  REQUIRE_FALSE(rest.empty());
  CHECK(rest.front().offset == (*l)->end);
  CHECK(rest.back().end == static_cast<std::int64_t>(content.size()));
  // Appended: a half line waits, the whole one comes.
  write_file(path, "Jun  9 08:50:21 mx postfix/qmgr[1]: ABC: rem", true);
  CHECK(read_all_chunks(r).empty());
  CHECK(r.pending_tail() == 44);
  write_file(path, "oved\n", true);
  const auto more = read_all_chunks(r);
  REQUIRE(more.size() == 1);
  CHECK(more[0].text == "Jun  9 08:50:21 mx postfix/qmgr[1]: ABC: removed");
  CHECK(more[0].offset == static_cast<std::int64_t>(content.size()));
}

TEST_CASE("LogReader::identity: first line's hash, equal across copies and gzip") {
  TempDir tmp;
  const std::string content = "Jun  9 08:50:20 mx postfix/qmgr[1]: ABC: removed\nsecond\n";
  write_file(tmp / "mail.log", content);
  auto plain = must_open(tmp / "mail.log");
  const auto id = must_identity(plain);
  REQUIRE(id.has_value());
  const std::string length = ":" + std::to_string(content.find('\n') + 1);
  CHECK(id->substr(16) == length);
  CHECK(id->find_first_not_of("0123456789abcdef") == 16);
  // identity() reads ahead without losing lines.
  const auto lines = read_all(plain);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].offset == 0);
  CHECK(must_identity(plain) == id);

  fs::rename(tmp / "mail.log", tmp / "mail.log.1");
  auto renamed = must_open(tmp / "mail.log.1");
  CHECK(must_identity(renamed) == id);

  write_file(tmp / "one.gz", gzip(content));
  write_file(tmp / "two.gz", gzip(content.substr(0, 10)) + gzip(content.substr(10)));
  for (const std::string name : {"one.gz", "two.gz"}) {
    CAPTURE(name);
    auto gz = must_open(tmp / name);
    CHECK(gz.compressed());
    CHECK(must_identity(gz) == id);
    CHECK(read_all(gz).size() == 2);
  }

  // Truncated and rewritten: another first line, another identity.
  write_file(tmp / "mail.log.1", "Jun  9 09:00:00 mx postfix/qmgr[1]: DEF: removed\nsecond\n");
  auto rewritten = must_open(tmp / "mail.log.1");
  const auto other = must_identity(rewritten);
  REQUIRE(other.has_value());
  CHECK(*other != *id);

  // Learned on the way when next() is called first.
  auto direct = must_open(tmp / "two.gz");
  CHECK(read_all(direct).size() == 2);
  CHECK(must_identity(direct) == id);
}

TEST_CASE("LogReader::identity: none until the first line is complete") {
  TempDir tmp;
  write_file(tmp / "empty.log", "");
  auto empty = must_open(tmp / "empty.log");
  CHECK_FALSE(must_identity(empty).has_value());
  CHECK(read_all(empty).empty());

  write_file(tmp / "partial.log", "no newline yet");
  auto partial = must_open(tmp / "partial.log");
  CHECK_FALSE(must_identity(partial).has_value());
  write_file(tmp / "partial.log", "\n", true);
  CHECK(must_identity(partial).has_value());
  CHECK(read_all(partial).size() == 1);
}

TEST_CASE("LogReader::skip_to: within, at and beyond the end") {
  TempDir tmp;
  const std::string content = "aaa\nbbb\nccc\n";
  write_file(tmp / "m.log", content);
  write_file(tmp / "m.log.gz", gzip(content));
  for (const std::string name : {"m.log", "m.log.gz"}) {
    CAPTURE(name);
    auto r = must_open(tmp / name);
    auto ok = r.skip_to(8);
    REQUIRE(ok.has_value());
    CHECK(*ok);
    auto got = read_all(r);
    REQUIRE(got.size() == 1);
    CHECK(got[0].text == "ccc");
    CHECK(got[0].offset == 8);

    auto at_end = must_open(tmp / name);
    ok = at_end.skip_to(12);
    REQUIRE(ok.has_value());
    CHECK(*ok);
    CHECK(read_all(at_end).empty());

    auto beyond = must_open(tmp / name);
    ok = beyond.skip_to(13);
    REQUIRE(ok.has_value());
    CHECK_FALSE(*ok);
    auto back = beyond.skip_to(0);
    if (back.has_value()) {
      CHECK(*back);  // plain files stay at 0; streams are at their end
    }
  }
}

TEST_CASE("LogReader: gzip trailing garbage and truncation are errors after the good lines") {
  TempDir tmp;
  const std::string content = generated(300 * 1024);
  const std::string z = gzip(content);
  struct Case {
    std::string label;
    std::string bytes;
    const char* want_error;
    bool all_lines;
  };
  const Case cases[] = {
      {"garbage after a member", z + "garbage here", "trailing garbage after gzip member at byte",
       true},
      {"one stray byte", z + "x", "trailing garbage after gzip member at byte", true},
      {"truncated", z.substr(0, z.size() * 2 / 3), "truncated gzip data at byte", false},
      {"corrupt", z.substr(0, 100) + std::string(200, '\xff') + z.substr(300), "bad gzip data",
       false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const std::string path = tmp / "bad.gz";
    write_file(path, c.bytes);
    auto r = must_open(path);
    std::size_t lines = 0;
    std::string error;
    for (;;) {
      auto l = r.next();
      if (!l) {
        error = l.error().what;
        CHECK(l.error().code == rampart::Errc::Invalid);
        break;
      }
      REQUIRE(l->has_value());  // the error comes before any "end"
      ++lines;
    }
    CHECK(error.find(path + ": " + c.want_error) == 0);
    const auto want_lines =
        static_cast<std::size_t>(std::count(content.begin(), content.end(), '\n'));
    if (c.all_lines) {
      CHECK(lines == want_lines);
      CHECK(error ==
            path + ": trailing garbage after gzip member at byte " + std::to_string(z.size()));
    } else {
      CHECK(lines < want_lines);
    }
    auto again = r.next();  // sticky
    REQUIRE_FALSE(again.has_value());
    CHECK(again.error().what == error);
  }
}

TEST_CASE("LogReader::open: errors name the path and the reason") {
  TempDir tmp;
  struct Case {
    std::string label;
    std::string path;
    std::string want;
  };
  const Case cases[] = {
      {"missing", tmp / "nope.log", tmp / "nope.log" + ": no such file or directory"},
      {"directory", tmp.dir.string(), tmp.dir.string() + ": is a directory"},
      {"under a file", tmp / "f/x", tmp / "f/x" + ": not a directory"},
  };
  write_file(tmp / "f", "x\n");
  for (const auto& c : cases) {
    CAPTURE(c.label);
    auto r = LogReader::open(c.path);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == rampart::Errc::Invalid);
    CHECK(r.error().what == c.want);
  }
}

TEST_CASE("LogReader::next: non-UTF-8 and NUL bytes pass through untouched") {
  TempDir tmp;
  const std::string weird("caf\xe9 \xff\xfe\x00z\x80", 10);
  write_file(tmp / "w.log", weird + "\n" + weird + "\r\n");
  auto r = must_open(tmp / "w.log");
  const auto got = read_all(r);
  REQUIRE(got.size() == 2);
  CHECK(got[0].text == weird);
  CHECK(got[1].text == weird + "\r");
}

TEST_CASE("LogReader::open: \"-\" reads stdin, plain or gzip, to its end") {
  const std::string content = "from\npipe\nno newline";
  for (const bool compressed : {false, true}) {
    CAPTURE(compressed);
    const std::string bytes = compressed ? gzip(content) : content;
    int p[2];
    REQUIRE(::pipe(p) == 0);
    REQUIRE(::write(p[1], bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    ::close(p[1]);
    const int saved = ::dup(0);
    REQUIRE(saved >= 0);
    REQUIRE(::dup2(p[0], 0) == 0);
    ::close(p[0]);
    // No REQUIRE until the real stdin is back.
    std::vector<std::string> got;
    std::optional<std::string> id;
    std::int64_t end = 0;
    bool was_compressed = false;
    std::string error;
    {
      auto r = LogReader::open("-");
      if (r) {
        was_compressed = r->compressed();
        if (auto i = r->identity()) id = *i;
        for (;;) {
          auto l = r->next();
          if (!l) error = l.error().what;
          if (!l || !*l) break;
          got.emplace_back((*l)->text);
          end = (*l)->end;
        }
      } else {
        error = r.error().what;
      }
    }
    REQUIRE(::dup2(saved, 0) == 0);  // put the real stdin back before any REQUIRE can fail
    ::close(saved);
    CHECK(error == "");
    CHECK(was_compressed == compressed);
    CHECK(id.has_value());
    REQUIRE(got.size() == 3);
    CHECK(got[0] == "from");
    CHECK(got[2] == "no newline");
    CHECK(end == static_cast<std::int64_t>(content.size()));
  }
}

TEST_CASE("Follower::next: appended lines, then Idle") {
  TempDir tmp;
  const std::string path = tmp / "mail.log";
  write_file(path, "a\nb\n");
  auto f = Follower::open(path);
  REQUIRE_MESSAGE(f.has_value(), f.error().what);
  using E = Follower::Event;
  REQUIRE(f->next(std::chrono::milliseconds(0)) == E::Line);
  CHECK(f->line().text == "a");
  REQUIRE(f->next(std::chrono::milliseconds(0)) == E::Line);
  CHECK(f->line().text == "b");
  CHECK(f->next(std::chrono::milliseconds(0)) == E::Idle);
  write_file(path, "c\nd", true);
  REQUIRE(f->next(std::chrono::milliseconds(0)) == E::Line);
  CHECK(f->line().text == "c");
  CHECK(f->line().offset == 4);
  CHECK(f->next(std::chrono::milliseconds(0)) == E::Idle);  // "d" is unfinished
  CHECK(f->next(std::chrono::milliseconds(0)) == E::Idle);
  CHECK(f->offset() == 6);
}

TEST_CASE("Follower::next: rename rotation reads the old file out, then the new one") {
  TempDir tmp;
  const std::string path = tmp / "mail.log";
  write_file(path, "old1\n");
  auto f = Follower::open(path);
  REQUIRE_MESSAGE(f.has_value(), f.error().what);
  using E = Follower::Event;
  const auto zero = std::chrono::milliseconds(0);
  const auto old_id = f->identity();
  REQUIRE(old_id.has_value());
  REQUIRE(f->next(zero) == E::Line);
  CHECK(f->next(zero) == E::Idle);

  write_file(path, "old2\nold-part", true);
  fs::rename(path, tmp / "mail.log.1");
  REQUIRE(f->next(zero) == E::Line);  // still reading the renamed file
  CHECK(f->line().text == "old2");
  CHECK(f->next(zero) == E::Idle);  // rename seen; the writer may not have reopened yet
  write_file(tmp / "mail.log.1", "ial\nold3\n", true);  // it had not
  REQUIRE(f->next(zero) == E::Line);
  CHECK(f->line().text == "old-partial");
  REQUIRE(f->next(zero) == E::Line);
  CHECK(f->line().text == "old3");
  CHECK(f->next(zero) == E::Idle);  // one quiet check after the rename
  write_file(tmp / "mail.log.1", "tail", true);
  CHECK(f->next(zero) == E::Idle);
  REQUIRE(f->next(zero) == E::Line);  // quiet again: complete, final partial line included
  CHECK(f->line().text == "tail");
  CHECK_FALSE(f->line().overlong);
  // No new file yet: not an error, keep polling.
  CHECK(f->next(zero) == E::Idle);
  CHECK(f->next(zero) == E::Idle);

  write_file(path, "new1\nnew2\n");
  REQUIRE(f->next(zero) == E::Rotated);
  const auto new_id = f->identity();
  REQUIRE(new_id.has_value());
  REQUIRE(new_id->has_value());
  CHECK(*new_id != *old_id);
  CHECK(f->offset() == 0);
  REQUIRE(f->next(zero) == E::Line);
  CHECK(f->line().text == "new1");
  CHECK(f->line().offset == 0);
  REQUIRE(f->next(zero) == E::Line);
  CHECK(f->line().text == "new2");
  CHECK(f->next(zero) == E::Idle);
}

TEST_CASE("Follower::next: a new file already in place rotates after the old one goes quiet") {
  TempDir tmp;
  const std::string path = tmp / "mail.log";
  write_file(path, "old1\n");
  auto f = Follower::open(path);
  REQUIRE_MESSAGE(f.has_value(), f.error().what);
  using E = Follower::Event;
  const auto zero = std::chrono::milliseconds(0);
  fs::rename(path, tmp / "mail.log.1");
  write_file(path, "new1\n");
  REQUIRE(f->next(zero) == E::Line);
  CHECK(f->line().text == "old1");
  CHECK(f->next(zero) == E::Idle);
  REQUIRE(f->next(zero) == E::Rotated);
  REQUIRE(f->next(zero) == E::Line);
  CHECK(f->line().text == "new1");
}

TEST_CASE("Follower::next: copytruncate restarts at offset 0") {
  TempDir tmp;
  const std::string path = tmp / "mail.log";
  write_file(path, "aaaa\nbbbb\n");
  auto f = Follower::open(path);
  REQUIRE_MESSAGE(f.has_value(), f.error().what);
  using E = Follower::Event;
  const auto zero = std::chrono::milliseconds(0);
  REQUIRE(f->next(zero) == E::Line);
  REQUIRE(f->next(zero) == E::Line);
  CHECK(f->next(zero) == E::Idle);
  write_file(path, "x\n");  // truncate in place, then the writer goes on
  REQUIRE(f->next(zero) == E::Rotated);
  CHECK(f->offset() == 0);
  REQUIRE(f->next(zero) == E::Line);
  CHECK(f->line().text == "x");
  CHECK(f->line().offset == 0);
  CHECK(f->next(zero) == E::Idle);
}

TEST_CASE("Follower::open: refuses what it cannot follow") {
  TempDir tmp;
  write_file(tmp / "m.gz", gzip("a\n"));
  struct Case {
    std::string label;
    std::string path;
    const char* want;
  };
  const Case cases[] = {
      {"gzip", tmp / "m.gz", ": gzip content (cannot follow)"},
      {"missing", tmp / "none", ": no such file or directory"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    auto f = Follower::open(c.path);
    REQUIRE_FALSE(f.has_value());
    CHECK(f.error().what == c.path + c.want);
  }
}
