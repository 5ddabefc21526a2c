// The log-reading adapter: read(2)/zlib into one buffer, lines as views, tail -F polling.
// I/O only; the parsing is sidecar/maillog. See log_reader.hpp for the contracts.
#include "classify/log_reader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>

#include <fmt/format.h>

namespace rampart::logreader {

namespace {

// Content buffer, 256 KiB: it and the next chunk's stay in a core's L2 cache (512 KiB and up on
// current x86), so read(2) copies into cache and the parse reads from it. 1 MiB chunks cost
// classify 4-5% more CPU on the bench log.
constexpr std::size_t kBufferSize = std::size_t{256} << 10;
constexpr std::size_t kInputSize = std::size_t{256} << 10;  // compressed input, 256 KiB
constexpr auto kPollStep = std::chrono::milliseconds(200);  // tail -F's default interval

// strerror's text, lower-case as STYLE.md section 4 wants ("permission denied").
std::string errno_text(int e) {
  std::string s = std::generic_category().message(e);
  if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') s[0] = static_cast<char>(s[0] - 'A' + 'a');
  return s;
}

std::string display(const std::string& path) { return path == "-" ? "stdin" : path; }

// 64-bit FNV-1a (http://www.isthe.com/chongo/tech/comp/fnv/).
std::uint64_t fnv1a(std::string_view bytes) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace

// zlib state for gzip content: RFC 1952 members, one after another (gzip -c a >x; gzip -c b >>x).
struct LogReader::Inflater {
  z_stream z{};
  std::unique_ptr<unsigned char[]> in = std::make_unique_for_overwrite<unsigned char[]>(kInputSize);
  std::int64_t raw_read = 0;  // compressed bytes read from the fd
  bool in_eof = false;        // the fd has no more bytes
  bool member_done = false;   // Z_STREAM_END seen; what follows is undecided
  bool ready = false;

  Inflater() = default;
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  ~Inflater() {
    if (ready) inflateEnd(&z);
  }
  std::int64_t position() const { return raw_read - static_cast<std::int64_t>(z.avail_in); }
};

LogReader::Fd& LogReader::Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (owned_ && fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    owned_ = std::exchange(o.owned_, false);
  }
  return *this;
}

LogReader::Fd::~Fd() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

LogReader::LogReader(LogReader&&) noexcept = default;
LogReader& LogReader::operator=(LogReader&&) noexcept = default;
LogReader::~LogReader() = default;

Error LogReader::make_error(std::string_view why) const {
  return Error{Errc::Invalid, fmt::format("{}: {}", display(path_), why)};
}

Result<LogReader> LogReader::open(const std::string& path, const Options& opts) {
  LogReader r;
  r.path_ = path;
  r.opts_ = opts;
  r.opts_.max_line = std::max<std::size_t>(opts.max_line, 1);
  r.complete_ = opts.final_partial;
  if (path == "-") {
    r.fd_ = Fd(STDIN_FILENO, false);
  } else {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return tl::unexpected(r.make_error(errno_text(errno)));
    r.fd_ = Fd(fd, true);
    struct stat st {};
    if (::fstat(fd, &st) != 0) return tl::unexpected(r.make_error(errno_text(errno)));
    if (S_ISDIR(st.st_mode)) return tl::unexpected(r.make_error(errno_text(EISDIR)));
    r.regular_ = S_ISREG(st.st_mode);
    if (r.regular_) (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  if (auto ok = r.start(); !ok) return tl::unexpected(ok.error());
  return r;
}

Result<void> LogReader::start() {
  // Room for a whole max_line line plus its newline, and then some to read into.
  cap_ = std::max(kBufferSize, opts_.max_line + (std::size_t{64} << 10));
  buf_ = std::make_unique_for_overwrite<char[]>(cap_);
  // Two bytes decide gzip or plain; a pipe may deliver them one at a time. Read no more than
  // the compressed-input buffer holds, so the bytes can move there if they are gzip, and no
  // more than the content buffer holds.
  const std::size_t first = std::min(kInputSize, cap_);
  std::size_t got = 0;
  while (got < 2) {
    auto n = read_raw(buf_.get() + got, first - got);
    if (!n) return tl::unexpected(n.error());
    if (*n == 0) {
      if (!regular_) eof_ = true;
      break;
    }
    got += *n;
  }
  if (got >= 2 && static_cast<unsigned char>(buf_[0]) == 0x1f &&
      static_cast<unsigned char>(buf_[1]) == 0x8b) {
    auto zs = std::make_unique<Inflater>();
    // 15 + 16: the gzip wrapper only (its magic is there); members are checked one by one.
    if (inflateInit2(&zs->z, 15 + 16) != Z_OK) return tl::unexpected(make_error("zlib init"));
    zs->ready = true;
    // The bytes read so far are compressed input, not content. gzip content is complete.
    std::memcpy(zs->in.get(), buf_.get(), got);
    zs->z.next_in = zs->in.get();
    zs->z.avail_in = static_cast<uInt>(got);
    zs->raw_read = static_cast<std::int64_t>(got);
    zs->in_eof = eof_;
    eof_ = false;
    complete_ = true;
    zs_ = std::move(zs);
    return {};
  }
  end_ = got;
  read_total_ = static_cast<std::int64_t>(got);
  return {};
}

Result<std::size_t> LogReader::read_raw(char* dst, std::size_t n) {
  for (;;) {
    const ssize_t got = ::read(fd_.get(), dst, n);
    if (got >= 0) return static_cast<std::size_t>(got);
    if (errno == EINTR) continue;
    return tl::unexpected(make_error(fmt::format("read: {}", errno_text(errno))));
  }
}

Result<std::size_t> LogReader::inflate_more(char* dst, std::size_t n) {
  Inflater& zs = *zs_;
  z_stream& z = zs.z;
  std::size_t produced = 0;
  auto stop_with = [&](Error e) -> Result<std::size_t> {
    // Lines before the bad spot still count: report the error on the next fill.
    error_ = std::move(e);
    if (produced > 0) return produced;
    return tl::unexpected(*error_);
  };
  auto stop = [&](std::string_view why) { return stop_with(make_error(why)); };
  auto refill = [&]() -> Result<void> {
    // Keep what zlib has not taken yet (at most a byte or two at a member boundary).
    if (z.avail_in > 0 && z.next_in != zs.in.get())
      std::memmove(zs.in.get(), z.next_in, z.avail_in);
    z.next_in = zs.in.get();
    auto got = read_raw(reinterpret_cast<char*>(zs.in.get()) + z.avail_in, kInputSize - z.avail_in);
    if (!got) return tl::unexpected(got.error());
    if (*got == 0) zs.in_eof = true;
    z.avail_in += static_cast<uInt>(*got);
    zs.raw_read += static_cast<std::int64_t>(*got);
    return {};
  };
  while (produced < n) {
    if (zs.member_done) {
      // RFC 1952 2.2: "A gzip file consists of a series of members". Anything else after a
      // member is garbage (gzip(1) also complains about it).
      if (z.avail_in < 2 && !zs.in_eof) {
        if (auto ok = refill(); !ok) return stop_with(ok.error());
        continue;
      }
      if (z.avail_in == 0) {
        eof_ = true;
        break;
      }
      if (z.avail_in < 2 || z.next_in[0] != 0x1f || z.next_in[1] != 0x8b)
        return stop(fmt::format("trailing garbage after gzip member at byte {}", zs.position()));
      inflateReset(&z);
      zs.member_done = false;
    }
    if (z.avail_in == 0) {
      if (zs.in_eof) return stop(fmt::format("truncated gzip data at byte {}", zs.position()));
      if (auto ok = refill(); !ok) return stop_with(ok.error());
      continue;
    }
    z.next_out = reinterpret_cast<Bytef*>(dst + produced);
    z.avail_out = static_cast<uInt>(n - produced);
    const int rc = inflate(&z, Z_NO_FLUSH);
    produced = n - z.avail_out;
    if (rc == Z_STREAM_END) {
      zs.member_done = true;
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return stop(fmt::format("bad gzip data at byte {}: {}", zs.position(),
                              z.msg != nullptr ? z.msg : "zlib error"));
    }
  }
  return produced;
}

void LogReader::compact() {
  if (begin_ == 0) return;
  const std::size_t keep = end_ - begin_;
  if (keep > 0) std::memmove(buf_.get(), buf_.get() + begin_, keep);
  begin_ = 0;
  end_ = keep;
}

Result<std::size_t> LogReader::fill() {
  if (error_) return tl::unexpected(*error_);
  compact();
  if (end_ == cap_) return tl::unexpected(Error{Errc::Internal, "log reader buffer full"});
  std::size_t n = 0;
  if (zs_ != nullptr) {
    if (eof_) return 0;
    auto got = inflate_more(buf_.get() + end_, cap_ - end_);
    if (!got) return got;
    n = *got;
  } else {
    if (eof_) return 0;
    auto got = read_raw(buf_.get() + end_, cap_ - end_);
    if (!got) {
      error_ = got.error();
      return got;
    }
    n = *got;
    if (n == 0 && !regular_) eof_ = true;
  }
  end_ += n;
  read_total_ += static_cast<std::int64_t>(n);
  return n;
}

void LogReader::note_identity(std::string_view bytes) {
  identity_ = fmt::format("{:016x}:{}", fnv1a(bytes), bytes.size());
}

Result<std::optional<std::string>> LogReader::identity() {
  if (identity_) return identity_;
  if (offset_ != 0) return std::nullopt;  // the first line went by without a \n
  for (;;) {
    const std::size_t avail = end_ - begin_;
    const char* p = buf_.get() + begin_;
    const void* nl = std::memchr(p, '\n', std::min(avail, opts_.max_line + 1));
    if (nl != nullptr) {
      note_identity({p, static_cast<std::size_t>(static_cast<const char*>(nl) - p) + 1});
      return identity_;
    }
    if (avail > opts_.max_line) {
      note_identity({p, opts_.max_line});
      return identity_;
    }
    auto n = fill();
    if (!n) return tl::unexpected(n.error());
    if (*n == 0) return std::nullopt;
  }
}

Result<bool> LogReader::skip_to(std::int64_t target) {
  if (target < offset_)
    return fail(Errc::Internal, fmt::format("{}: cannot skip back from offset {} to {}",
                                            display(path_), offset_, target));
  if (target == offset_) return true;
  if (offset_ == 0) {
    // The identity is the first line's: learn it before the first line goes by.
    if (auto id = identity(); !id) return tl::unexpected(id.error());
  }
  if (!skipping_ && target <= read_total_) {  // already buffered
    begin_ += static_cast<std::size_t>(target - pos_);
    pos_ = offset_ = target;
    return true;
  }
  if (zs_ == nullptr && regular_) {
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0) {
      error_ = make_error(fmt::format("stat: {}", errno_text(errno)));
      begin_ = end_;  // next() reports the error too
      return tl::unexpected(*error_);
    }
    if (st.st_size < target) return false;
    if (::lseek(fd_.get(), static_cast<off_t>(target), SEEK_SET) < 0) {
      error_ = make_error(fmt::format("seek: {}", errno_text(errno)));
      begin_ = end_;
      return tl::unexpected(*error_);
    }
    begin_ = end_ = 0;
    pos_ = offset_ = read_total_ = target;
    skipping_ = false;
    return true;
  }
  if (skipping_ && target < pos_)
    return fail(Errc::Internal,
                fmt::format("{}: offset {} is inside an overlong line", display(path_), target));
  skipping_ = false;
  // A stream: read and discard.
  for (;;) {
    const auto take = static_cast<std::size_t>(
        std::min<std::int64_t>(static_cast<std::int64_t>(end_ - begin_), target - pos_));
    begin_ += take;
    pos_ += static_cast<std::int64_t>(take);
    offset_ = pos_;
    if (pos_ == target) return true;
    auto n = fill();
    if (!n) return tl::unexpected(n.error());
    if (*n == 0) return false;
  }
}

Result<std::optional<Line>> LogReader::next() {
  // No early error check: lines buffered before an error are still returned; fill() reports it.
  const std::size_t max_line = opts_.max_line;
  for (;;) {
    if (skipping_) {
      // The rest of an overlong line: discard up to its newline.
      const char* p = buf_.get() + begin_;
      const void* nl = std::memchr(p, '\n', end_ - begin_);
      if (nl != nullptr) {
        const auto used = static_cast<std::size_t>(static_cast<const char*>(nl) - p) + 1;
        begin_ += used;
        pos_ += static_cast<std::int64_t>(used);
      } else {
        pos_ += static_cast<std::int64_t>(end_ - begin_);
        begin_ = end_;
        auto n = fill();
        if (!n) return tl::unexpected(n.error());
        if (*n > 0) continue;
        if (!complete_ && !eof_) return std::nullopt;  // not finished yet: try again later
      }
      skipping_ = false;
      const Line line{cut_, offset_, pos_, true};
      offset_ = pos_;
      return line;
    }
    const std::size_t avail = end_ - begin_;
    const char* p = buf_.get() + begin_;
    const void* nl = std::memchr(p, '\n', std::min(avail, max_line + 1));
    if (nl != nullptr) {
      const auto len = static_cast<std::size_t>(static_cast<const char*>(nl) - p);
      if (pos_ == 0 && !identity_) note_identity({p, len + 1});
      const Line line{{p, len}, pos_, pos_ + static_cast<std::int64_t>(len) + 1, false};
      begin_ += len + 1;
      pos_ = offset_ = line.end;
      return line;
    }
    if (avail > max_line) {
      // Keep the cut out of the buffer: skipping the rest reuses the buffer.
      cut_.assign(p, max_line);
      if (pos_ == 0 && !identity_) note_identity(cut_);
      skipping_ = true;
      begin_ += max_line;
      pos_ += static_cast<std::int64_t>(max_line);
      continue;
    }
    auto n = fill();
    if (!n) return tl::unexpected(n.error());
    if (*n > 0) continue;
    if (avail == 0 || (!complete_ && !eof_)) return std::nullopt;
    // A final line without \n, in content that is complete.
    p = buf_.get() + begin_;
    const Line line{{p, avail}, pos_, pos_ + static_cast<std::int64_t>(avail), false};
    begin_ += avail;
    pos_ = offset_ = line.end;
    return line;
  }
}

Result<std::optional<Chunk>> LogReader::next_chunk(Chunk recycled) {
  // Fill the buffer first: the bigger the chunk, the fewer hand-overs.
  if (!skipping_ && !eof_ && (end_ - begin_) < cap_ / 2) {
    if (recycled.storage != nullptr && recycled.capacity == cap_) {
      // Read into the recycled storage, which the caller's thread parsed last (it is in that
      // core's cache), not into buf_, which the other reading thread filled last: then the
      // kernel's copy does not pull each cache line over from the other core. The bytes
      // pending (the unfinished line after the last chunk) move along.
      const std::size_t pending = end_ - begin_;
      if (pending > 0) std::memcpy(recycled.storage.get(), buf_.get() + begin_, pending);
      std::swap(recycled.storage, buf_);
      begin_ = 0;
      end_ = pending;
    }
    if (auto n = fill(); !n && end_ == begin_) return tl::unexpected(n.error());
    // An error with lines still buffered: they go first, the next call reports it.
  }
  const char* const p = buf_.get() + begin_;
  const std::size_t avail = end_ - begin_;
  const void* last = skipping_ || avail == 0 ? nullptr : ::memrchr(p, '\n', avail);
  if (last == nullptr) {
    // No whole line buffered: an overlong line, a line longer than what is buffered, or a final
    // line without \n. next() knows them all; its line is copied into the chunk.
    RAMPART_TRY(line, next());
    if (!line) return std::optional<Chunk>{};
    Chunk c = std::move(recycled);
    if (c.storage == nullptr || c.capacity < line->text.size()) {
      c.capacity = std::max(line->text.size(), std::size_t{4096});
      c.storage = std::make_unique_for_overwrite<char[]>(c.capacity);
    }
    std::memcpy(c.storage.get(), line->text.data(), line->text.size());
    c.text = {c.storage.get(), line->text.size()};
    c.offset = line->offset;
    c.end = line->end;
    c.overlong = line->overlong;
    return std::optional<Chunk>{std::move(c)};
  }
  const auto size = static_cast<std::size_t>(static_cast<const char*>(last) - p) + 1;
  if (pos_ == 0 && !identity_) {
    const void* nl = std::memchr(p, '\n', std::min(size, opts_.max_line + 1));
    note_identity(
        nl != nullptr
            ? std::string_view{p, static_cast<std::size_t>(static_cast<const char*>(nl) - p) + 1}
            : std::string_view{p, opts_.max_line});
  }
  // Hand the buffer over with the chunk; the unfinished line after it moves to the new buffer.
  Chunk c = std::move(recycled);
  if (c.storage == nullptr || c.capacity != cap_) {
    c.storage = std::make_unique_for_overwrite<char[]>(cap_);
    c.capacity = cap_;
  }
  std::swap(c.storage, buf_);
  const std::size_t tail = avail - size;
  if (tail > 0) std::memcpy(buf_.get(), c.storage.get() + begin_ + size, tail);
  c.text = {c.storage.get() + begin_, size};
  c.offset = pos_;
  c.end = pos_ + static_cast<std::int64_t>(size);
  c.overlong = false;
  begin_ = 0;
  end_ = tail;
  pos_ = offset_ = c.end;
  return std::optional<Chunk>{std::move(c)};
}

Result<void> LogReader::rewind() {
  if (::lseek(fd_.get(), 0, SEEK_SET) < 0) {
    error_ = make_error(fmt::format("seek: {}", errno_text(errno)));
    return tl::unexpected(*error_);
  }
  begin_ = end_ = 0;
  pos_ = offset_ = read_total_ = 0;
  skipping_ = false;
  identity_.reset();
  complete_ = opts_.final_partial;
  eof_ = false;
  return {};
}

// ---- Follower ----------------------------------------------------------------------------------

Result<Follower> Follower::open(const std::string& path, const Options& opts) {
  auto r = LogReader::open(path, opts);
  if (!r) return tl::unexpected(r.error());
  if (!r->regular_) return tl::unexpected(r->make_error("not a regular file (cannot follow)"));
  if (r->compressed()) return tl::unexpected(r->make_error("gzip content (cannot follow)"));
  struct stat st {};
  if (::fstat(r->fd_.get(), &st) != 0)
    return tl::unexpected(r->make_error(fmt::format("stat: {}", errno_text(errno))));
  Follower f(std::move(*r));
  f.dev_ = static_cast<std::uint64_t>(st.st_dev);
  f.ino_ = static_cast<std::uint64_t>(st.st_ino);
  return f;
}

Follower::Check Follower::failed(Error e) {
  error_ = std::move(e);
  failed_ = true;
  return Check::Failed;
}

Follower::Check Follower::reopen() {
  auto r = LogReader::open(reader_.path(), reader_.opts_);
  if (!r) {
    // Gone again (or not yet created): keep polling, as tail -F does.
    if (::access(reader_.path().c_str(), F_OK) != 0) return Check::Nothing;
    return failed(r.error());
  }
  struct stat st {};
  if (::fstat(r->fd_.get(), &st) != 0)
    return failed(r->make_error(fmt::format("stat: {}", errno_text(errno))));
  reader_ = std::move(*r);
  dev_ = static_cast<std::uint64_t>(st.st_dev);
  ino_ = static_cast<std::uint64_t>(st.st_ino);
  renamed_ = idle_armed_ = finishing_ = false;
  return Check::Rotated;
}

Follower::Check Follower::check() {
  if (finishing_) return reopen();  // the renamed file is read to its very end
  const int fd = reader_.fd_.get();
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return failed(reader_.make_error(fmt::format("stat: {}", errno_text(errno))));
  const std::int64_t mtime_ns =
      static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  const bool modified = mtime_ns_ >= 0 && mtime_ns != mtime_ns_;
  mtime_ns_ = mtime_ns;
  const std::int64_t have = reader_.offset() + reader_.pending_tail();
  // Truncated in place (logrotate copytruncate): shorter than what we read, or modified without
  // growing and no longer starting with the line we identified it by (rewritten to at least
  // its old length between two checks). What is there now is new content.
  if (!reader_.compressed() &&
      (st.st_size < have || (modified && st.st_size <= have && rewritten(fd)))) {
    if (auto ok = reader_.rewind(); !ok) return failed(ok.error());
    renamed_ = idle_armed_ = false;
    return Check::Rotated;
  }
  struct stat now {};
  const bool same = ::stat(reader_.path().c_str(), &now) == 0 &&
                    static_cast<std::uint64_t>(now.st_dev) == dev_ &&
                    static_cast<std::uint64_t>(now.st_ino) == ino_;
  if (same) {
    renamed_ = idle_armed_ = false;
    return Check::Nothing;
  }
  // Renamed away or removed. The writer may still append to the old file until it reopens its
  // log (syslog on SIGHUP), so it is complete only once a whole check interval brought nothing.
  const std::int64_t read_to = reader_.offset() + reader_.pending_tail();
  if (!renamed_ || !idle_armed_ || read_to != quiet_at_) {
    renamed_ = true;
    idle_armed_ = true;
    quiet_at_ = read_to;
    return Check::Nothing;
  }
  // Quiet since the rename: the old file is complete, its final partial line included.
  reader_.mark_complete();
  finishing_ = true;
  return Check::Retry;
}

bool Follower::rewritten(int fd) {
  if (!reader_.identity_) return false;
  std::string first(std::min<std::size_t>(reader_.opts_.max_line, 64 * 1024), '\0');
  const auto n = ::pread(fd, first.data(), first.size(), 0);
  if (n <= 0) return n == 0;  // empty now: rewritten (truncated); an error: judge next time
  first.resize(static_cast<std::size_t>(n));
  const auto nl = first.find('\n');
  if (nl == std::string::npos && first.size() < reader_.opts_.max_line) return true;
  const std::string_view line(first.data(), nl == std::string::npos ? first.size() : nl + 1);
  return fmt::format("{:016x}:{}", fnv1a(line), line.size()) != *reader_.identity_;
}

Follower::Event Follower::next(std::chrono::milliseconds wait) {
  if (failed_) return Event::Error;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    auto r = reader_.next();
    if (!r) {
      failed(r.error());
      return Event::Error;
    }
    if (*r) {
      line_ = **r;
      idle_armed_ = false;
      return Event::Line;
    }
    switch (check()) {
      case Check::Rotated: return Event::Rotated;
      case Check::Failed: return Event::Error;
      case Check::Retry: continue;
      case Check::Nothing: break;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return Event::Idle;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(kPollStep, deadline - now));
  }
}

}  // namespace rampart::logreader
