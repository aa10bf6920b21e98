// Signal rules over indicator outputs: crossover, threshold and band breakout, edge-triggered.
//
// A rule keeps one byte of state per symbol and fires only on a transition it observed: the
// first usable observation sets the state without firing, and NaN inputs (warm-up) are skipped
// without touching it.
#pragma once

#include <cmath>
#include <cstdint>

namespace tickserver {

enum class RuleKind : std::uint8_t {
  Crossover = 0,  ///< +1 when a crosses above b, -1 when it crosses below
  Threshold = 1,  ///< -1 when a crosses above `above`, +1 when it crosses below `below`
  Breakout = 2,   ///< +1 when close moves above the upper band, -1 below the lower band
};

[[nodiscard]] constexpr const char* to_string(RuleKind k) noexcept {
  switch (k) {
    case RuleKind::Crossover: return "crossover";
    case RuleKind::Threshold: return "threshold";
    case RuleKind::Breakout: return "breakout";
  }
  return "unknown";
}

/// One firing of a rule.
struct Signal {
  std::int64_t ts_event;
  std::uint32_t symbol_id;
  std::uint16_t rule_id;
  std::int8_t direction;  ///< +1 or -1
  double value;
};

namespace rules {

/// Per-symbol rule state; zero-initialised means "nothing observed yet".
using State = std::uint8_t;

/// Crossover of a over b. State: 0 unknown, 1 a was above b, 2 a was below b (equality keeps
/// the previous side, so touching and returning never fires).
[[nodiscard]] inline int crossover(double a, double b, State& state) noexcept {
  const double d = a - b;
  if (!(d > 0.0) && !(d < 0.0)) return 0;  // NaN or equal
  const State now = d > 0.0 ? 1 : 2;
  const State before = state;
  state = now;
  if (before == 2 && now == 1) return 1;
  if (before == 1 && now == 2) return -1;
  return 0;
}

/// Threshold levels on a; either may be NaN (disabled). Bits: 1 known-above, 2 was-above,
/// 4 known-below, 8 was-below.
[[nodiscard]] inline int threshold(double a, double above, double below, State& state) noexcept {
  if (std::isnan(a)) return 0;
  int fired = 0;
  if (!std::isnan(above)) {
    const bool now = a > above;
    if ((state & 1) && !(state & 2) && now) fired = -1;
    state = static_cast<State>((state & ~3) | 1 | (now ? 2 : 0));
  }
  if (!std::isnan(below)) {
    const bool now = a < below;
    if ((state & 4) && !(state & 8) && now) fired = 1;
    state = static_cast<State>((state & ~12) | 4 | (now ? 8 : 0));
  }
  return fired;
}

/// Band breakout of `close`. State: 0 unknown, 1 inside, 2 above upper, 3 below lower.
[[nodiscard]] inline int breakout(double close, double upper, double lower, State& state) noexcept {
  if (std::isnan(close) || std::isnan(upper) || std::isnan(lower)) return 0;
  const State now = close > upper ? 2 : (close < lower ? 3 : 1);
  const State before = state;
  state = now;
  if (before == 0 || before == now) return 0;
  if (now == 2) return 1;
  if (now == 3) return -1;
  return 0;
}

}  // namespace rules
}  // namespace tickserver
