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

/// Per-symbol rule state; zero-initialised means "nothing observed yet". An enum rather than a
/// plain byte: stores through a character type may alias any object, which would make the
/// compiler reload everything after each rule on the hot path.
enum class State : std::uint8_t {};

namespace detail {
[[nodiscard]] constexpr unsigned bits(State s) noexcept { return static_cast<unsigned>(s); }
[[nodiscard]] constexpr State state(unsigned v) noexcept { return static_cast<State>(v); }
}  // namespace detail

/// Crossover of a over b. State: 0 unknown, 1 a was above b, 2 a was below b (equality keeps
/// the previous side, so touching and returning never fires).
[[nodiscard]] inline int crossover(double a, double b, State& state) noexcept {
  const double d = a - b;
  if (!(d > 0.0) && !(d < 0.0)) return 0;  // NaN or equal
  const unsigned now = d > 0.0 ? 1 : 2;
  const unsigned before = detail::bits(state);
  state = detail::state(now);
  if (before == 2 && now == 1) return 1;
  if (before == 1 && now == 2) return -1;
  return 0;
}

/// Threshold levels on a; either may be NaN (disabled). Bits: 1 known-above, 2 was-above,
/// 4 known-below, 8 was-below.
[[nodiscard]] inline int threshold(double a, double above, double below, State& state) noexcept {
  if (std::isnan(a)) return 0;
  int fired = 0;
  unsigned s = detail::bits(state);
  if (!std::isnan(above)) {
    const bool now = a > above;
    if ((s & 3u) == 1u && now) fired = -1;
    s = (s & ~3u) | 1u | (now ? 2u : 0u);
  }
  if (!std::isnan(below)) {
    const bool now = a < below;
    if ((s & 12u) == 4u && now) fired = 1;
    s = (s & ~12u) | 4u | (now ? 8u : 0u);
  }
  state = detail::state(s);
  return fired;
}

/// Band breakout of `close`. State: 0 unknown, 1 inside, 2 above upper, 3 below lower.
[[nodiscard]] inline int breakout(double close, double upper, double lower, State& state) noexcept {
  if (std::isnan(close) || std::isnan(upper) || std::isnan(lower)) return 0;
  const unsigned now = close > upper ? 2 : (close < lower ? 3 : 1);
  const unsigned before = detail::bits(state);
  state = detail::state(now);
  if (before == 0 || before == now) return 0;
  if (now == 2) return 1;
  if (now == 3) return -1;
  return 0;
}

}  // namespace rules
}  // namespace tickserver
