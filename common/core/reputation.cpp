#include "core/reputation.hpp"

namespace rampart::core {

std::string_view to_string(AnomalyKind k) {
  switch (k) {
    case AnomalyKind::BindFailure: return "bind-failure";
    case AnomalyKind::UnexpectedEgress: return "unexpected-egress";
    case AnomalyKind::Unsigned: return "unsigned";
    case AnomalyKind::ZeroDeliveries: return "zero-deliveries";
  }
  return "?";
}

std::optional<AnomalyKind> parse_anomaly_kind(std::string_view s) {
  for (auto k : {AnomalyKind::BindFailure, AnomalyKind::UnexpectedEgress, AnomalyKind::Unsigned,
                 AnomalyKind::ZeroDeliveries}) {
    if (to_string(k) == s) return k;
  }
  return std::nullopt;
}

}  // namespace rampart::core
