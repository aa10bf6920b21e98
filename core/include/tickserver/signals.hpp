// Signal rules over indicator outputs: crossover, threshold and band breakout, edge-triggered.
//
// A rule keeps one byte of state per symbol and fires only on a transition it observed: the
// first usable observation sets the state without firing, and NaN inputs (warm-up) are skipped
// without touching it (docs/decisions/0011).
//
// Each rule maps its inputs to an observation code (0 = nothing usable, else the position:
// above/below, inside/above/below, ...) and fires from a 4 x 4 table indexed by (state, code);
// the state becomes the last non-zero code. The same code drives a single evaluation and
// scan(), which evaluates a rule over a block of inputs without a data-dependent branch.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "tickserver/platform.hpp"

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

/// Per-symbol rule state: 0 = nothing observed yet, else the last non-zero observation code. An
/// enum rather than a plain byte: stores through a character type may alias any object, which
/// would make the compiler reload everything after each rule on the hot path.
enum class State : std::uint8_t {};

/// Crossover codes: 1 a above b, 2 a below b, 0 equal or NaN (equality keeps the previous side,
/// so touching and returning never fires).
[[nodiscard]] TICKSERVER_INLINE unsigned crossover_code(double a, double b) noexcept {
  const double d = a - b;
  return static_cast<unsigned>(d > 0.0) | (static_cast<unsigned>(d < 0.0) << 1);
}

/// Threshold codes: 2 above `above`, 3 below `below`, 1 in between, 0 NaN. A NaN level never
/// matches (that side is disabled).
[[nodiscard]] TICKSERVER_INLINE unsigned threshold_code(double a, double above,
                                                        double below) noexcept {
  const unsigned gt = a > above;
  const unsigned lt = (a < below) & (gt ^ 1U);
  return static_cast<unsigned>(a == a) * (1U + gt + 2U * lt);
}

/// Breakout codes: 2 close above the upper band, 3 below the lower band, 1 inside, 0 NaN.
[[nodiscard]] TICKSERVER_INLINE unsigned breakout_code(double close, double upper,
                                                       double lower) noexcept {
  const unsigned gt = close > upper;
  const unsigned lt = (close < lower) & (gt ^ 1U);
  const unsigned usable = (close == close) & (upper == upper) & (lower == lower);
  return usable * (1U + gt + 2U * lt);
}

/// Directions fired by (state * 4 + code).
inline constexpr std::int8_t kCrossoverTable[16] = {0, 0, 0, 0,  0, 0, -1, 0,
                                                    0, 1, 0, 0,  0, 0, 0,  0};
inline constexpr std::int8_t kThresholdTable[16] = {0, 0, 0,  0,  0, 0, -1, 1,
                                                    0, 0, 0,  1,  0, 0, -1, 0};
inline constexpr std::int8_t kBreakoutTable[16] = {0, 0, 0, 0,  0, 0, 1, -1,
                                                   0, 0, 0, -1, 0, 0, 1, 0};

[[nodiscard]] constexpr const std::int8_t* table(RuleKind k) noexcept {
  switch (k) {
    case RuleKind::Crossover: return kCrossoverTable;
    case RuleKind::Threshold: return kThresholdTable;
    case RuleKind::Breakout: return kBreakoutTable;
  }
  return kCrossoverTable;
}

/// The tables' directions in arithmetic form, for `now` following `prev` where `now` is not 0
/// (the element-wise form of step() for a block without unusable inputs; it vectorises).
[[nodiscard]] TICKSERVER_INLINE std::int8_t fire_crossover(unsigned prev, unsigned now) noexcept {
  return prev != now && prev != 0 ? static_cast<std::int8_t>(3 - 2 * static_cast<int>(now)) : 0;
}
[[nodiscard]] TICKSERVER_INLINE std::int8_t fire_threshold(unsigned prev, unsigned now) noexcept {
  return prev != now && prev != 0 && now != 1
             ? static_cast<std::int8_t>(2 * static_cast<int>(now) - 5)
             : 0;
}
[[nodiscard]] TICKSERVER_INLINE std::int8_t fire_breakout(unsigned prev, unsigned now) noexcept {
  return prev != now && prev != 0 && now != 1
             ? static_cast<std::int8_t>(5 - 2 * static_cast<int>(now))
             : 0;
}

/// Observe one code: return the direction fired (0 for none) and update the state.
[[nodiscard]] TICKSERVER_INLINE int step(const std::int8_t* table, State& state,
                                         unsigned code) noexcept {
  const unsigned s = static_cast<unsigned>(state);
  const int dir = table[s * 4 + code];
  state = static_cast<State>(code != 0 ? code : s);
  return dir;
}

/// Observe codes[1..n] in order, starting from state codes[0]: dir[i] = the direction fired by
/// codes[i + 1] (0 for none). Without a data-dependent branch; vectorised when no code is 0.
/// Returns the state after the block.
template <RuleKind Kind>
TICKSERVER_INLINE State observe(const std::uint8_t* __restrict codes, std::size_t n,
                                std::int8_t* __restrict dir) noexcept {
  unsigned unusable = 0;
  for (std::size_t i = 1; i <= n; ++i) unusable |= codes[i] == 0;
  if (unusable != 0) [[unlikely]] {
    const std::int8_t* t = table(Kind);
    unsigned s = codes[0];
    for (std::size_t i = 0; i < n; ++i) {
      const unsigned now = codes[i + 1];
      dir[i] = t[s * 4 + now];
      s = now != 0 ? now : s;
    }
    return static_cast<State>(s);
  }
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned prev = codes[i], now = codes[i + 1];
    if constexpr (Kind == RuleKind::Crossover) {
      dir[i] = fire_crossover(prev, now);
    } else if constexpr (Kind == RuleKind::Threshold) {
      dir[i] = fire_threshold(prev, now);
    } else {
      dir[i] = fire_breakout(prev, now);
    }
  }
  return static_cast<State>(n > 0 ? codes[n] : codes[0]);
}

[[nodiscard]] inline int crossover(double a, double b, State& state) noexcept {
  return step(kCrossoverTable, state, crossover_code(a, b));
}

/// Threshold levels on a; either may be NaN (disabled); `above` >= `below`.
[[nodiscard]] inline int threshold(double a, double above, double below, State& state) noexcept {
  return step(kThresholdTable, state, threshold_code(a, above, below));
}

/// Band breakout of `close`.
[[nodiscard]] inline int breakout(double close, double upper, double lower, State& state) noexcept {
  return step(kBreakoutTable, state, breakout_code(close, upper, lower));
}

}  // namespace rules
}  // namespace tickserver
