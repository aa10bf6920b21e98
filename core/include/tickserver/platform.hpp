// Compiler helpers shared by the core headers: CPU-dispatched hot loops and common constants.
#pragma once

#include <cstddef>  // also defines __GLIBC__ on glibc systems
#include <cstdint>
#include <limits>

// Hot batch loops are compiled twice, for baseline x86-64 and for x86-64-v3 (AVX2 + FMA), and
// the dynamic loader picks one (GNU ifunc). TA-Lib 0.8 computes its EMA, MACD and ATR
// recurrences with a fused multiply-add; std::fma is one instruction in the v3 clone and a
// correctly rounded libm call elsewhere, so every clone produces the same bits. The whole core
// is compiled with -ffp-contract=off so that the compiler never fuses anything TA-Lib does not.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) && \
    !defined(TICKSERVER_NO_CLONES)
#define TICKSERVER_HOT_CLONES __attribute__((target_clones("default", "arch=x86-64-v3")))
#else
#define TICKSERVER_HOT_CLONES
#endif

// Forces inlining of per-update hot code into its caller, so it lands in the caller's per-CPU
// clone (an out-of-line copy would be compiled for the baseline CPU only).
#if defined(__GNUC__)
#define TICKSERVER_INLINE [[gnu::always_inline]] inline
#else
#define TICKSERVER_INLINE inline
#endif

namespace tickserver {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
inline constexpr std::int64_t kMinTime = std::numeric_limits<std::int64_t>::min();
inline constexpr std::int64_t kMaxTime = std::numeric_limits<std::int64_t>::max();

/// a + b for timestamps, saturating at the int64 range instead of overflowing.
[[nodiscard]] constexpr std::int64_t add_saturated(std::int64_t a, std::int64_t b) noexcept {
  if (b > 0 && a > kMaxTime - b) return kMaxTime;
  if (b < 0 && a < kMinTime - b) return kMinTime;
  return a + b;
}

/// a - b for b >= 0, saturating at the int64 minimum.
[[nodiscard]] constexpr std::int64_t sub_saturated(std::int64_t a, std::int64_t b) noexcept {
  return a < kMinTime + b ? kMinTime : a - b;
}

/// The mathematical a mod b in [0, b) for b > 0 (C++'s % truncates toward zero).
[[nodiscard]] constexpr std::int64_t floor_mod(std::int64_t a, std::int64_t b) noexcept {
  const std::int64_t r = a % b;
  return r < 0 ? r + b : r;
}

}  // namespace tickserver
