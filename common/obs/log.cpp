// Event logging: see log.hpp.
#include "obs/log.hpp"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

namespace rampart::obs {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::string g_program = "rampart";
std::mutex g_mu;

// The pid for the "[pid]" of every line, read once per process rather than by a system call per
// line (rampart-policyd logs a line per refused recipient). A child after fork() asks again.
long pid() {
  static std::atomic<long> cached{0};
  static const bool registered = [] {
    ::pthread_atfork(nullptr, nullptr, [] { cached.store(0, std::memory_order_relaxed); });
    return true;
  }();
  (void)registered;
  long p = cached.load(std::memory_order_relaxed);
  if (p == 0) {
    p = static_cast<long>(::getpid());
    cached.store(p, std::memory_order_relaxed);
  }
  return p;
}

std::string_view name(Level l) {
  switch (l) {
    case Level::Error: return "error";
    case Level::Warning: return "warning";
    case Level::Info: return "info";
    case Level::Debug: return "debug";
  }
  return "info";
}
}  // namespace

std::optional<Level> parse_level(std::string_view s) {
  for (Level l : {Level::Error, Level::Warning, Level::Info, Level::Debug}) {
    if (s == name(l)) return l;
  }
  return std::nullopt;
}

void init(std::string_view program, Level level) {
  std::lock_guard lock(g_mu);
  g_program = std::string(program);
  g_level = static_cast<int>(level);
}

bool enabled(Level level) {
  return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}

void log(Level level, std::string_view event, std::string_view fields) {
  if (!enabled(level)) return;
  std::lock_guard lock(g_mu);
  std::fprintf(stderr, "%s[%ld]: %.*s %.*s%s%.*s\n", g_program.c_str(), pid(),
               static_cast<int>(name(level).size()), name(level).data(),
               static_cast<int>(event.size()), event.data(), fields.empty() ? "" : " ",
               static_cast<int>(fields.size()), fields.data());
}

void decision(std::string_view queue_id, std::string_view verdict, std::string_view fields) {
  if (!enabled(Level::Info)) return;
  if (queue_id.empty()) queue_id = "NOQUEUE";
  std::lock_guard lock(g_mu);
  std::fprintf(stderr, "%s[%ld]: %.*s: %.*s %.*s\n", g_program.c_str(), pid(),
               static_cast<int>(queue_id.size()), queue_id.data(), static_cast<int>(verdict.size()),
               verdict.data(), static_cast<int>(fields.size()), fields.data());
}

}  // namespace rampart::obs
