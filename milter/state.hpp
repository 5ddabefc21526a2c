// rampart-milter's process-wide state: the current rules and OpenDKIM snapshots (swapped
// atomically on reload; each message pins the pair it started with), settings and counters.
// libmilter callbacks are plain C functions, so they reach this through one global.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "core/dkim_scope.hpp"
#include "core/ruleset.hpp"
#include "milter/core/message.hpp"
#include "obs/counters.hpp"

namespace rampart::milter {

struct Snapshot {
  std::shared_ptr<const core::RuleSet> rules;
  std::shared_ptr<const core::dkim::Config> dkim;  // null: check disabled or not loadable
  std::string dkim_error;                          // why dkim is null although the check is on
};

class State {
 public:
  Snapshot snapshot() const {
    std::lock_guard lock(mu_);
    return snap_;
  }
  void set_rules(std::shared_ptr<const core::RuleSet> r) {
    std::lock_guard lock(mu_);
    snap_.rules = std::move(r);
  }
  void set_dkim(std::shared_ptr<const core::dkim::Config> d, std::string error) {
    std::lock_guard lock(mu_);
    snap_.dkim = std::move(d);
    snap_.dkim_error = std::move(error);
  }

  Settings settings;
  bool dkim_check = true;        // [milter] opendkim_config != ""
  bool on_error_accept = false;  // [milter] on_error = "accept"
  obs::Counters counters;

 private:
  mutable std::mutex mu_;
  Snapshot snap_;
};

State& state();

// Registers the callbacks with libmilter (smfi_register); false on failure.
bool register_callbacks();

}  // namespace rampart::milter
