// L2 order book: price levels per side keyed by integer ticks, checked and unchecked updates.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <stdexcept>
#include <vector>

namespace tickserver {

enum class Side : std::uint8_t { Bid = 0, Ask = 1 };

/// Outcome of a book update. Ok and Gap mean the update was applied; every other value means
/// it was rejected and the book is exactly as it was before the call.
enum class BookStatus : std::uint8_t {
  Ok = 0,
  Gap = 1,         ///< applied, but the sequence skipped numbers (book may be stale: resnapshot)
  Stale = 2,       ///< sequence number not greater than the last applied one
  Crossed = 3,     ///< the update would leave best bid >= best ask (a locked book is crossed)
  BadPrice = 4,    ///< price not finite, not positive, or at/beyond OrderBook::kMaxTicks
  BadSize = 5,     ///< size not finite or negative
  BadSide = 6,     ///< side is neither 0 (bid) nor 1 (ask)
  OffTick = 7,     ///< price is not a positive multiple of the book's tick size
  NoLevel = 8,     ///< delete (size 0) of a price level that does not exist
  Duplicate = 9,   ///< a snapshot lists the same price twice on one side
  BadLength = 10,  ///< a snapshot's price and size columns differ in length
};

[[nodiscard]] constexpr bool applied(BookStatus s) noexcept {
  return s == BookStatus::Ok || s == BookStatus::Gap;
}

[[nodiscard]] constexpr const char* to_string(BookStatus s) noexcept {
  switch (s) {
    case BookStatus::Ok: return "ok";
    case BookStatus::Gap: return "sequence gap";
    case BookStatus::Stale: return "stale sequence number";
    case BookStatus::Crossed: return "update would cross the book (bid >= ask)";
    case BookStatus::BadPrice: return "price must be finite, positive and below 2^40 ticks";
    case BookStatus::BadSize: return "size must be finite and non-negative";
    case BookStatus::BadSide: return "side must be 0 (bid) or 1 (ask)";
    case BookStatus::OffTick: return "price is not a multiple of the tick size";
    case BookStatus::NoLevel: return "delete of a price level that is not in the book";
    case BookStatus::Duplicate: return "snapshot lists a price level twice";
    case BookStatus::BadLength: return "snapshot price and size columns differ in length";
  }
  return "unknown";
}

/// One price level. `ticks` orders the levels exactly; `price` is the price as it was first
/// given for this level, returned unchanged so callers never see a rounding artefact of
/// ticks * tick_size.
struct Level {
  std::int64_t ticks;
  double price;
  double size;
};

/// An L2 book for one instrument.
///
/// Layout: one vector of Level per side, sorted so that the best level is at the back (bids by
/// ascending ticks, asks by descending ticks). Real feeds update near the touch, so inserts and
/// deletes there move few elements, and the level is found by comparing the last kScan levels
/// without branches; only a level deeper than that is binary-searched. The update path does
/// not branch on the side either: levels are compared through a side key (ticks for bids,
/// -ticks for asks) in which both sides ascend toward the touch. See
/// docs/decisions/0001-order-book-layout.md for the measurements behind this.
///
/// Policies of the checked path (`apply`, `snapshot`):
/// - A locked result (best bid == best ask) is rejected as Crossed, like a crossed one.
/// - A delete (size 0) of an absent level is rejected (NoLevel): it means the feed and the book
///   disagree. `apply_unchecked` ignores it.
/// - `seq` 0 is unsequenced: never stale, never a gap, does not move `last_seq`. A non-zero seq
///   must exceed `last_seq` (else Stale); one that skips numbers is applied and counted (Gap).
///   A rejected update does not consume its sequence number.
/// - Checks run in this order and the first failure is reported: side, price, size, sequence,
///   tick grid, then the book (NoLevel for a delete, Crossed for a set).
/// - An update of an existing level sets its size and keeps the price first given for it.
class OrderBook {
 public:
  /// Prices at or beyond this many ticks are rejected (BadPrice): past it a double cannot
  /// reliably tell an on-tick price from one a fraction of a tick off.
  static constexpr double kMaxTicks = 1099511627776.0;  // 2^40
  /// A price is on the tick grid when price / tick_size is within this many ticks of an integer
  /// n >= 1: an absolute floor plus 2^-48 of n (16 ulps; parsing the price, representing the
  /// tick and one multiplication cost at most ~2). At the 2^40 limit that is 1/256 of a tick.
  static constexpr double kTickAbsTol = 1e-9;
  static constexpr double kTickRelTol = 0x1p-48;
  /// Levels next to the touch compared without branches before falling back to binary search.
  static constexpr std::size_t kScan = 8;

  /// Raise std::invalid_argument unless `tick_size` is finite and positive.
  explicit OrderBook(double tick_size = 0.0001)
      : tick_size_(tick_size), inv_tick_(1.0 / tick_size) {
    if (!(tick_size > 0.0) || !std::isfinite(tick_size)) {
      throw std::invalid_argument("tick_size must be finite and positive");
    }
  }

  /// Apply one delta: set the level at `price` on `side` (0 bid, 1 ask) to `size`; size 0
  /// deletes the level. On any status but Ok/Gap the book is unchanged (see class policies).
  [[nodiscard]] BookStatus apply(std::uint8_t side, double price, double size,
                                 std::uint64_t seq) noexcept {
    if (side > 1) return BookStatus::BadSide;
    const double t = price * inv_tick_;
    if (!(price > 0.0 && t < kMaxTicks)) return BookStatus::BadPrice;  // NaN fails too
    if (!(size >= 0.0 && size <= kDblMax)) return BookStatus::BadSize;
    if (seq - 1 < last_seq_) return BookStatus::Stale;  // seq 0 wraps to the maximum: never stale
    const std::int64_t ticks = round_ticks(t);
    if (std::fabs(t - static_cast<double>(ticks)) > kTickAbsTol + kTickRelTol * t || ticks == 0) {
      return BookStatus::OffTick;
    }
    std::vector<Level>& me = sides_[side];
    const std::int64_t m = -static_cast<std::int64_t>(side);
    const std::int64_t key = side_key(ticks, m);
    const std::size_t pos = lower_pos(me, key, m);
    const bool found = pos < me.size() && me[pos].ticks == ticks;
    if (size == 0.0) {
      if (!found) return BookStatus::NoLevel;
      erase_at(me, pos);
    } else if (found) {
      me[pos].size = size;
    } else {
      // Crossed iff bid ticks >= best ask ticks (or ask ticks <= best bid ticks): in side keys,
      // key + the other side's best key >= 0. An existing level cannot cross (the book is not).
      const std::vector<Level>& other = sides_[side ^ 1];
      if (!other.empty() && key + side_key(other.back().ticks, ~m) >= 0) {
        return BookStatus::Crossed;
      }
      insert_at(me, pos, Level{ticks, price, size});
    }
    if (seq == 0) return BookStatus::Ok;
    const bool gap = last_seq_ != 0 && seq != last_seq_ + 1;
    last_seq_ = seq;
    gaps_ += gap ? 1 : 0;
    return gap ? BookStatus::Gap : BookStatus::Ok;
  }

  /// Apply a pre-validated delta: no validation, no cross check; a delete of an absent level is
  /// ignored and a skipped sequence number still counts as a gap. Garbage in gives a
  /// meaningless book, never undefined behaviour. Use only for data already checked upstream.
  void apply_unchecked(std::uint8_t side, double price, double size, std::uint64_t seq) noexcept {
    const unsigned s = side & 1U;
    std::vector<Level>& me = sides_[s];
    const std::int64_t ticks = round_ticks(price * inv_tick_);
    const std::int64_t m = -static_cast<std::int64_t>(s);
    const std::size_t pos = lower_pos(me, side_key(ticks, m), m);
    const bool found = pos < me.size() && me[pos].ticks == ticks;
    if (size == 0.0) {
      if (found) erase_at(me, pos);
    } else if (found) {
      me[pos].size = size;
    } else {
      insert_at(me, pos, Level{ticks, price, size});
    }
    if (seq != 0) {
      gaps_ += (last_seq_ != 0 && seq != last_seq_ + 1) ? 1 : 0;
      last_seq_ = seq;
    }
  }

  /// Apply `side.size()` deltas in order through `apply` (checked) or `apply_unchecked`.
  /// Append the index and status of each rejected row to `rejected_rows` / `reasons` (never
  /// any when unchecked) and return how many were rejected. Raise std::invalid_argument if the
  /// columns differ in length. Defined out of line (core/src/order_book.cpp) so that the loop
  /// is compiled with the library's -O3 wherever it is called from (the Python extension is
  /// built with -Os).
  std::size_t apply_batch(std::span<const std::uint8_t> side, std::span<const double> price,
                          std::span<const double> size, std::span<const std::uint64_t> seq,
                          bool checked, std::vector<std::int64_t>& rejected_rows,
                          std::vector<std::uint8_t>& reasons);

  /// Replace the whole book. All-or-nothing: on any error the book is unchanged. Levels may
  /// come in any order; zero-size levels are skipped, but a price listed twice on one side is
  /// rejected (Duplicate) even if one copy has size 0. A non-zero `seq` must exceed `last_seq`
  /// and becomes it (gap detection restarts from the snapshot); 0 leaves `last_seq` alone.
  [[nodiscard]] BookStatus snapshot(std::span<const double> bid_px, std::span<const double> bid_sz,
                                    std::span<const double> ask_px, std::span<const double> ask_sz,
                                    std::uint64_t seq) {
    if (bid_px.size() != bid_sz.size() || ask_px.size() != ask_sz.size()) {
      return BookStatus::BadLength;
    }
    if (seq - 1 < last_seq_) return BookStatus::Stale;
    std::vector<Level> bids;
    std::vector<Level> asks;
    if (auto s = build_side(bid_px, bid_sz, 0, bids); s != BookStatus::Ok) return s;
    if (auto s = build_side(ask_px, ask_sz, -1, asks); s != BookStatus::Ok) return s;
    if (!bids.empty() && !asks.empty() && bids.back().ticks >= asks.back().ticks) {
      return BookStatus::Crossed;
    }
    sides_[0] = std::move(bids);
    sides_[1] = std::move(asks);
    if (seq != 0) last_seq_ = seq;
    ++snapshots_;
    return BookStatus::Ok;
  }

  /// Remove every level. `last_seq`, `gaps` and `snapshots` are kept.
  void clear() noexcept {
    sides_[0].clear();
    sides_[1].clear();
  }

  [[nodiscard]] double tick_size() const noexcept { return tick_size_; }
  [[nodiscard]] std::uint64_t last_seq() const noexcept { return last_seq_; }
  [[nodiscard]] std::uint64_t gaps() const noexcept { return gaps_; }
  [[nodiscard]] std::uint64_t snapshots() const noexcept { return snapshots_; }
  [[nodiscard]] std::size_t depth(Side side) const noexcept { return of(side).size(); }
  [[nodiscard]] bool empty() const noexcept { return sides_[0].empty() && sides_[1].empty(); }

  [[nodiscard]] double best_bid_px() const noexcept { return best(0).price; }
  [[nodiscard]] double best_bid_sz() const noexcept { return best(0).size; }
  [[nodiscard]] double best_ask_px() const noexcept { return best(1).price; }
  [[nodiscard]] double best_ask_sz() const noexcept { return best(1).size; }

  /// NaN unless both sides have a level (as are spread, microprice and imbalance).
  [[nodiscard]] double mid() const noexcept { return 0.5 * (best_bid_px() + best_ask_px()); }
  [[nodiscard]] double spread() const noexcept { return best_ask_px() - best_bid_px(); }
  /// Size-weighted mid: leans toward the side with less size (the price more likely to trade
  /// next): (bid_px * ask_sz + ask_px * bid_sz) / (bid_sz + ask_sz).
  [[nodiscard]] double microprice() const noexcept {
    const double bs = best_bid_sz();
    const double as = best_ask_sz();
    return (best_bid_px() * as + best_ask_px() * bs) / (bs + as);
  }
  /// Top-of-book imbalance in [-1, 1]: +1 all size on the bid, -1 all on the ask.
  [[nodiscard]] double imbalance() const noexcept {
    const double bs = best_bid_sz();
    const double as = best_ask_sz();
    return (bs - as) / (bs + as);
  }

  /// Copy up to `n` levels of `side`, best first. Returns how many were written.
  std::size_t top(Side side, std::size_t n, double* px_out, double* sz_out) const noexcept {
    const auto& levels = of(side);
    const std::size_t k = std::min(n, levels.size());
    for (std::size_t i = 0; i < k; ++i) {
      const Level& l = levels[levels.size() - 1 - i];
      px_out[i] = l.price;
      sz_out[i] = l.size;
    }
    return k;
  }

  /// Levels of one side, worst first (best at the back).
  [[nodiscard]] std::span<const Level> levels(Side side) const noexcept { return of(side); }

 private:
  static constexpr double kDblMax = std::numeric_limits<double>::max();
  static constexpr Level kNoLevel{0, std::numeric_limits<double>::quiet_NaN(),
                                  std::numeric_limits<double>::quiet_NaN()};

  [[nodiscard]] const std::vector<Level>& of(Side side) const noexcept {
    return sides_[static_cast<std::size_t>(side) & 1U];
  }
  [[nodiscard]] const Level& best(std::size_t side) const noexcept {
    return sides_[side].empty() ? kNoLevel : sides_[side].back();
  }

  // Nearest tick count for 0 <= t < kMaxTicks; anything else (NaN included) maps to 0.
  [[nodiscard]] static std::int64_t round_ticks(double t) noexcept {
    return t >= 0.0 && t < kMaxTicks ? static_cast<std::int64_t>(t + 0.5) : 0;
  }

  // The side key ascends toward the touch on both sides: ticks for bids (m = 0), -ticks for
  // asks (m = -1).
  [[nodiscard]] static std::int64_t side_key(std::int64_t ticks, std::int64_t m) noexcept {
    return (ticks ^ m) - m;
  }

  // Index of the first level whose side key is >= key (the level itself when present).
  [[nodiscard]] static std::size_t lower_pos(const std::vector<Level>& v, std::int64_t key,
                                             std::int64_t m) noexcept {
    const Level* d = v.data();
    const std::size_t n = v.size();
    // Count the levels at or past `key` among the last kScan: sorted, so that count is the
    // distance of the answer from the back. Comparisons, no branches.
    std::size_t c = 0;
    if (n < kScan) [[unlikely]] {
      for (std::size_t j = 0; j < n; ++j) c += static_cast<std::size_t>(side_key(d[j].ticks, m) >= key);
      return n - c;
    }
    const Level* back = d + (n - kScan);
    for (std::size_t j = 0; j < kScan; ++j) {
      c += static_cast<std::size_t>(side_key(back[j].ticks, m) >= key);
    }
    if (c < kScan) [[likely]] return n - c;
    // Deeper than kScan levels: branchless binary search over the rest.
    const Level* b = d;
    std::size_t len = n - kScan;
    while (len > 1) {
      const std::size_t half = len / 2;
      b += side_key(b[half - 1].ticks, m) < key ? half : 0;
      len -= half;
    }
    return static_cast<std::size_t>(b - d) + static_cast<std::size_t>(side_key(b->ticks, m) < key);
  }

  static void insert_at(std::vector<Level>& v, std::size_t pos, const Level& l) {
    v.insert(v.begin() + static_cast<std::ptrdiff_t>(pos), l);
  }
  static void erase_at(std::vector<Level>& v, std::size_t pos) noexcept {
    v.erase(v.begin() + static_cast<std::ptrdiff_t>(pos));
  }

  // Validate one side of a snapshot and sort it best-at-back (side mask m as in side_key).
  [[nodiscard]] BookStatus build_side(std::span<const double> px, std::span<const double> sz,
                                      std::int64_t m, std::vector<Level>& out) const {
    out.reserve(px.size());
    for (std::size_t i = 0; i < px.size(); ++i) {
      const double t = px[i] * inv_tick_;
      if (!(px[i] > 0.0 && t < kMaxTicks)) return BookStatus::BadPrice;
      if (!(sz[i] >= 0.0 && sz[i] <= kDblMax)) return BookStatus::BadSize;
      const std::int64_t ticks = round_ticks(t);
      if (std::fabs(t - static_cast<double>(ticks)) > kTickAbsTol + kTickRelTol * t ||
          ticks == 0) {
        return BookStatus::OffTick;
      }
      out.push_back(Level{ticks, px[i], sz[i]});
    }
    std::sort(out.begin(), out.end(), [m](const Level& a, const Level& b) {
      return side_key(a.ticks, m) < side_key(b.ticks, m);
    });
    // Duplicates are looked for before zero-size levels are dropped: {10.00: 5, 10.00: 0} is
    // ambiguous, not a level of 5.
    for (std::size_t i = 1; i < out.size(); ++i) {
      if (out[i].ticks == out[i - 1].ticks) return BookStatus::Duplicate;
    }
    std::erase_if(out, [](const Level& l) { return l.size == 0.0; });
    return BookStatus::Ok;
  }

  double tick_size_;
  double inv_tick_;
  std::array<std::vector<Level>, 2> sides_;  // [0] bids, [1] asks; best at the back
  std::uint64_t last_seq_ = 0;
  std::uint64_t gaps_ = 0;
  std::uint64_t snapshots_ = 0;
};

}  // namespace tickserver
