// The log-reading adapter for `rampart classify`: mail.log lines out of a plain file, a gzip'd
// rotation (detected by magic bytes; concatenated members), or stdin, plus tail -F style
// following. I/O only: it knows nothing of Postfix; the pure parser is sidecar/maillog/line.hpp.
// Fast path: read(2) into one 256 KiB buffer, memchr for newlines, lines are views into the buffer;
// no allocation per line. Not thread-safe; an instance belongs to one thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/result.hpp"

namespace rampart::logreader {

struct Options {
  // Longest line returned whole. A longer line is returned cut to its first max_line bytes with
  // Line::overlong set; the rest, up to its newline, is skipped (Line::end still counts it).
  std::size_t max_line = 64 * 1024;
  // The content is complete even if it is a plain regular file: a final line without \n is
  // returned. (Gzip content and pipes/stdin are always complete at their end.)
  bool final_partial = false;
};

struct Line {
  std::string_view text;    // without the \n; a trailing \r is kept (the parser ignores it)
  std::int64_t offset = 0;  // content offset of the line's first byte
  std::int64_t end = 0;     // content offset just after its \n (= content end for a final line)
  bool overlong = false;    // text holds only the first Options::max_line bytes
};

// A run of whole lines taken out of a LogReader with next_chunk(): the reader hands over its
// buffer, so the lines stay valid for as long as the chunk lives, on any thread.
struct Chunk {
  // The lines, each ending in \n, except that the last may lack it when the content is complete
  // (a final line without \n). A line longer than Options::max_line is overlong, as next()
  // would say: its first max_line bytes stand for it. Empty: a chunk to recycle.
  std::string_view text;
  std::int64_t offset = 0;  // content offset of text's first byte
  std::int64_t end = 0;     // content offset after the chunk (more than offset + text.size()
                            // when `overlong` stands for a line whose rest was skipped)
  // text is one line, cut at max_line, of a line too long for the buffer (Line::overlong).
  bool overlong = false;

  std::unique_ptr<char[]> storage;  // text points into it (or into a line copied there)
  std::size_t capacity = 0;
};

class Follower;

// Reads one log's content line by line. Offsets are content offsets: decompressed bytes for gzip.
// Every error is Errc::Invalid with text "<path>: <reason>" (path "stdin" for "-"), e.g.
// "/var/log/mail.log: permission denied", "/x/mail.log.2.gz: trailing garbage after gzip member
// at byte 123"; callers prefix their own context ("rampart classify: "). After an error every
// later call returns the same error. Move-only.
class LogReader {
 public:
  // "-" reads stdin (fd 0, which is not closed). Otherwise the path must name something readable
  // that is not a directory. Gzip is recognised by its magic bytes (1f 8b), never by name.
  [[nodiscard]] static Result<LogReader> open(const std::string& path, const Options& opts = {});

  // The content identity: "<16 lower-case hex digits>:<length>", the 64-bit FNV-1a of the first
  // line's bytes through its \n and that length in bytes. Equal for a file, its renamed copy and
  // its gzip'd copy; different once the file is truncated and rewritten. (An overlong first line
  // is identified by its first max_line bytes.) Reads ahead as needed; nothing is lost for next().
  // nullopt while the content has no complete first line (an empty file). Cached once known.
  [[nodiscard]] Result<std::optional<std::string>> identity();

  // Skips the content up to `offset` (a Line::end from an earlier run). Plain files seek; gzip
  // and stdin read and discard. false when the content is shorter than offset: the file was
  // truncated or is another file (for a stream the reader is then at its end). Skipping
  // backwards is an error.
  [[nodiscard]] Result<bool> skip_to(std::int64_t offset);

  // The next line, nullopt at the end for now. Line::text stays valid until the next call on
  // this reader. A final line without \n is returned only when the content is complete (gzip,
  // stdin/pipe, Options::final_partial, mark_complete()); for a plain regular file it is left
  // unconsumed (a writer may still be appending) and pending_tail() says how long it is, and a
  // later next() picks up whatever was appended meanwhile.
  [[nodiscard]] Result<std::optional<Line>> next();

  // The next run of whole lines, up to the buffer's size (256 KiB, or max_line + 64 KiB when
  // that is more), nullopt at the end for now: the same lines as next() would return one by
  // one, with the same rules for a final line without \n and for overlong lines. `recycled` is
  // an earlier chunk whose storage is reused (none: a new buffer is allocated). Mixing next()
  // and next_chunk() on one reader is fine.
  [[nodiscard]] Result<std::optional<Chunk>> next_chunk(Chunk recycled = {});

  // Declares the content complete from now on (like Options::final_partial), e.g. once a
  // rotated-away file has gone quiet.
  void mark_complete() { complete_ = true; }

  std::int64_t offset() const { return offset_; }  // content offset after the last line returned
  // Content bytes read past offset() but not returned: the unfinished final line.
  std::int64_t pending_tail() const { return read_total_ - offset_; }
  bool compressed() const { return zs_ != nullptr; }
  std::size_t max_line() const { return opts_.max_line; }
  const std::string& path() const { return path_; }

  LogReader(LogReader&&) noexcept;
  LogReader& operator=(LogReader&&) noexcept;
  LogReader(const LogReader&) = delete;
  LogReader& operator=(const LogReader&) = delete;
  ~LogReader();

 private:
  friend class Follower;
  struct Inflater;
  // An owned file descriptor (or a borrowed one: stdin is never closed).
  class Fd {
   public:
    Fd() = default;
    Fd(int fd, bool owned) : fd_(fd), owned_(owned) {}
    Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)), owned_(std::exchange(o.owned_, false)) {}
    Fd& operator=(Fd&& o) noexcept;
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd();
    int get() const { return fd_; }

   private:
    int fd_ = -1;
    bool owned_ = false;
  };

  LogReader() = default;
  Result<void> start();   // allocate, read the first bytes, detect gzip
  Result<void> rewind();  // plain regular files: back to offset 0 (copytruncate)
  Error make_error(std::string_view why) const;
  Result<std::size_t> fill();  // more content into the buffer; 0 at end of content (for now)
  Result<std::size_t> read_raw(char* dst, std::size_t n);
  Result<std::size_t> inflate_more(char* dst, std::size_t n);
  void compact();
  void note_identity(std::string_view bytes);

  std::string path_;
  Options opts_;
  Fd fd_;
  bool regular_ = false;   // a plain regular file: content may still grow
  bool complete_ = false;  // a final line without \n may be returned
  bool eof_ = false;       // a stream (pipe or gzip) has ended: no more reads
  std::unique_ptr<char[]> buf_;
  std::size_t cap_ = 0;
  std::size_t begin_ = 0;  // buf_[begin_, end_) is content not yet returned
  std::size_t end_ = 0;
  std::int64_t pos_ = 0;         // content offset of buf_[begin_]
  std::int64_t offset_ = 0;      // = pos_, or the start of the overlong line being skipped
  std::int64_t read_total_ = 0;  // content bytes produced so far (= pos_ + end_ - begin_)
  // An overlong line being skipped to its newline: its first max_line bytes, kept here.
  bool skipping_ = false;
  std::string cut_;
  std::optional<std::string> identity_;
  std::optional<Error> error_;  // sticky
  std::unique_ptr<Inflater> zs_;
};

// tail -F for `rampart classify --follow FILE`: lines as they are appended, through renames
// (logrotate's create mode) and truncation in place (copytruncate). Polls stat() every
// min(wait, 200ms); the path missing for a while (between rename and create) is not an error.
class Follower {
 public:
  enum class Event : std::uint8_t {
    Line,     // line() holds the next line
    Idle,     // no new line within `wait`: commit, check signals, call again
    Rotated,  // new content from offset 0 follows: the old file was renamed away and read to its
              // end (its final line without \n too, once idle through one check after the
              // rename), or it was truncated in place. identity()/reader() now refer to it.
    Error,    // an I/O error, text in error(); the follower is stuck (reopen to retry)
  };

  // The path must exist and hold plain (not gzip) content; errors as for LogReader::open.
  [[nodiscard]] static Result<Follower> open(const std::string& path, const Options& opts = {});

  // Waits up to `wait` for something to report; a 0ms wait checks once.
  Event next(std::chrono::milliseconds wait);

  const Line& line() const { return line_; }  // valid after Event::Line until the next call
  const Error& error() const { return error_; }
  [[nodiscard]] Result<std::optional<std::string>> identity() { return reader_.identity(); }
  LogReader& reader() { return reader_; }  // e.g. reader().skip_to(saved) right after open
  std::int64_t offset() const { return reader_.offset(); }
  const std::string& path() const { return reader_.path(); }

 private:
  enum class Check : std::uint8_t { Nothing, Retry, Rotated, Failed };
  explicit Follower(LogReader reader) : reader_(std::move(reader)) {}
  Check check();   // one poll, after the reader ran dry
  Check reopen();  // the path names new content: switch to it if it can be opened
  Check failed(Error e);
  bool rewritten(int fd);  // the first line on disk is no longer the one we identified

  LogReader reader_;
  std::uint64_t dev_ = 0;  // identity of the file we read, to spot the path naming another
  std::uint64_t ino_ = 0;
  bool renamed_ = false;       // the path no longer names our file (renamed away or missing)
  bool idle_armed_ = false;    // a dry check since the rename was seen or a line was read ...
  std::int64_t quiet_at_ = 0;  // ... and the read position it saw
  // The file's modification time at the last check: a file modified without growing may have
  // been truncated and rewritten to at least its old length between two checks.
  std::int64_t mtime_ns_ = -1;
  bool finishing_ = false;  // the renamed file is complete: its final partial line is a line
  bool failed_ = false;
  Line line_;
  Error error_{Errc::Internal, ""};
};

}  // namespace rampart::logreader
