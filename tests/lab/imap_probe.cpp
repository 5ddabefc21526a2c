// rampart-imap-probe: drives rampart::imap::Session against a real IMAP server, for the lab's IMAP
// test (tests/lab/imap_test.sh). Test tooling only: it prints what the client returns.
//
// Usage: rampart-imap-probe --url URL --user USER --password-file FILE [--mailbox M]
//                           [--move-to FOLDER] [--tls verify|insecure|none] [--ca-file FILE]
//                           [--timeout-ms N] [--max-message BYTES] [--out DIR] ACTION...
// Session::open() runs first ("open ok caps=..."); then each ACTION in order:
//   list            unseen uids=U,U,... (or uids=-)
//   fetch UID       fetched uid=U size=S bytes=B (body saved as DIR/U.eml with --out) or
//                   skipped uid=U size=S
//   done UID        done uid=U
//   fetch-all       list, then fetch and done for each unseen message (skipped ones stay unseen)
//   wait FILE       prints "waiting FILE", then polls until FILE exists (at most 60 s)
// then close() ("closed"). On an error it prints
//   error step=STEP errc=temporary|invalid|config|internal what=TEXT
// and exits with rampart::exit_code() of it (75, 65, 78, 70); 2 on bad usage, 0 otherwise.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "imap/imap.hpp"

namespace {

namespace imap = rampart::imap;
using rampart::Errc;

std::string_view errc_name(Errc c) {
  switch (c) {
    case Errc::Temporary: return "temporary";
    case Errc::Invalid: return "invalid";
    case Errc::Config: return "config";
    case Errc::Internal: return "internal";
  }
  return "?";
}

int report(std::string_view step, const rampart::Error& e) {
  std::printf("error step=%.*s errc=%.*s what=%s\n", static_cast<int>(step.size()), step.data(),
              static_cast<int>(errc_name(e.code).size()), errc_name(e.code).data(), e.what.c_str());
  std::fflush(stdout);
  return rampart::exit_code(e.code);
}

int usage(const char* why) {
  std::fprintf(stderr, "rampart-imap-probe: %s (see the source for usage)\n", why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  imap::Config cfg;
  std::string out_dir;
  std::vector<std::string> actions;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a.starts_with("--")) {
      v = value();
      if (v == nullptr) return usage("an option without its value");
    }
    if (a == "--url") {
      cfg.url = v;
    } else if (a == "--user") {
      cfg.user = v;
    } else if (a == "--password-file") {
      cfg.password_file = v;
    } else if (a == "--mailbox") {
      cfg.mailbox = v;
    } else if (a == "--move-to") {
      cfg.move_to = v;
    } else if (a == "--tls") {
      cfg.tls = v;
    } else if (a == "--ca-file") {
      cfg.ca_file = v;
    } else if (a == "--timeout-ms") {
      cfg.timeout = std::chrono::milliseconds(std::stoll(v));
    } else if (a == "--max-message") {
      cfg.max_message = std::stoull(v);
    } else if (a == "--out") {
      out_dir = v;
    } else if (a.starts_with("--")) {
      return usage("unknown option");
    } else {
      actions.emplace_back(a);
    }
  }

  auto session = imap::Session::open(cfg);
  if (!session) return report("open", session.error());
  std::string caps;
  for (const auto& c : session->capabilities()) caps += (caps.empty() ? "" : ",") + c;
  std::printf("open ok caps=%s\n", caps.c_str());
  std::fflush(stdout);

  const auto fetch = [&](std::uint32_t uid, bool and_done) -> int {
    auto m = session->fetch(uid);
    if (!m) return report("fetch", m.error());
    if (!m->bytes) {
      std::printf("skipped uid=%u size=%llu\n", uid, static_cast<unsigned long long>(m->size));
      std::fflush(stdout);
      return 0;
    }
    std::printf("fetched uid=%u size=%llu bytes=%zu\n", uid,
                static_cast<unsigned long long>(m->size), m->bytes->size());
    if (!out_dir.empty()) {
      std::ofstream(fmt::format("{}/{}.eml", out_dir, uid), std::ios::binary) << *m->bytes;
    }
    if (and_done) {
      if (auto d = session->done(uid); !d) return report("done", d.error());
      std::printf("done uid=%u\n", uid);
    }
    std::fflush(stdout);
    return 0;
  };

  for (std::size_t i = 0; i < actions.size(); ++i) {
    const std::string& a = actions[i];
    const auto arg = [&]() -> std::string { return i + 1 < actions.size() ? actions[++i] : ""; };
    if (a == "list" || a == "fetch-all") {
      auto uids = session->unseen();
      if (!uids) return report("list", uids.error());
      std::string list;
      for (const auto u : *uids) list += (list.empty() ? "" : ",") + std::to_string(u);
      std::printf("unseen uids=%s\n", list.empty() ? "-" : list.c_str());
      std::fflush(stdout);
      if (a == "fetch-all") {
        for (const auto u : *uids) {
          if (const int rc = fetch(u, true); rc != 0) return rc;
        }
      }
    } else if (a == "fetch") {
      const std::string uid = arg();
      if (uid.empty()) return usage("fetch needs a UID");
      if (const int rc = fetch(static_cast<std::uint32_t>(std::stoul(uid)), false); rc != 0) {
        return rc;
      }
    } else if (a == "done") {
      const std::string uid = arg();
      if (uid.empty()) return usage("done needs a UID");
      if (auto d = session->done(static_cast<std::uint32_t>(std::stoul(uid))); !d) {
        return report("done", d.error());
      }
      std::printf("done uid=%s\n", uid.c_str());
    } else if (a == "wait") {
      const std::string file = arg();
      std::printf("waiting %s\n", file.c_str());
      std::fflush(stdout);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (!std::filesystem::exists(file) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    } else {
      return usage("unknown action");
    }
    std::fflush(stdout);
  }
  if (auto c = session->close(); !c) return report("close", c.error());
  std::printf("closed\n");
  return 0;
}
