// L2 order book: price levels per side keyed by integer ticks, checked and unchecked updates.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
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
  Gap = 1,        ///< applied, but the sequence skipped numbers (book may be stale: resnapshot)
  Stale = 2,      ///< sequence number not greater than the last applied one
  Crossed = 3,    ///< the update would leave best bid >= best ask
  BadPrice = 4,   ///< price not finite or not positive
  BadSize = 5,    ///< size not finite or negative
  BadSide = 6,    ///< side is neither 0 (bid) nor 1 (ask)
  OffTick = 7,    ///< price is not a multiple of the book's tick size
  NoLevel = 8,    ///< delete (size 0) of a price level that does not exist
  Duplicate = 9,  ///< a snapshot lists the same price twice on one side
  BadLength = 10, ///< a snapshot's price and size columns differ in length
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

/// One price level. `ticks` orders the levels exactly; `price` is the price as it was given,
/// returned unchanged so callers never see a rounding artefact of ticks * tick_size.
struct Level {
  std::int64_t ticks;
  double price;
  double size;
};

/// An L2 book for one instrument.
///
/// Each side is a vector sorted so that the best level is at the back: updates near the touch,
/// which dominate real feeds, move few elements. With the ~50 levels per side a real L2 feed
/// carries, a binary search plus a short memmove beats node-based trees.
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

  /// Raise std::invalid_argument unless `tick_size` is finite and positive.
  explicit OrderBook(double tick_size = 0.0001) : tick_size_(tick_size), inv_tick_(1.0 / tick_size) {
    if (!(tick_size > 0.0) || !std::isfinite(tick_size)) {
      throw std::invalid_argument("tick_size must be finite and positive");
    }
  }

  /// Apply one delta: set the level at `price` on `side` to `size` (0 deletes the level).
  /// `seq` 0 means unsequenced (no stale/gap check); otherwise it must increase.
  [[nodiscard]] BookStatus apply(std::uint8_t side, double price, double size,
                                 std::uint64_t seq) noexcept {
    if (side > 1) return BookStatus::BadSide;
    if (!std::isfinite(price) || price <= 0.0) return BookStatus::BadPrice;
    if (!std::isfinite(size) || size < 0.0) return BookStatus::BadSize;
    if (seq != 0 && last_seq_ != 0 && seq <= last_seq_) return BookStatus::Stale;
    std::int64_t ticks = 0;
    if (auto s = to_ticks(price, ticks); s != BookStatus::Ok) return s;
    auto& levels = side == 0 ? bids_ : asks_;
    if (size == 0.0) {
      const auto it = find(side, ticks);
      if (it == levels.end() || it->ticks != ticks) return BookStatus::NoLevel;
      levels.erase(it);
    } else {
      if (side == 0 ? (!asks_.empty() && ticks >= asks_.back().ticks)
                    : (!bids_.empty() && ticks <= bids_.back().ticks)) {
        return BookStatus::Crossed;
      }
      upsert(side, ticks, price, size);
    }
    return record_seq(seq);
  }

  /// Apply a pre-validated delta: no validation, no cross check. A delete of an absent level is
  /// ignored. Use only for data already checked upstream.
  void apply_unchecked(std::uint8_t side, double price, double size, std::uint64_t seq) noexcept {
    const auto ticks = round_ticks(price * inv_tick_);
    auto& levels = side == 0 ? bids_ : asks_;
    if (size == 0.0) {
      const auto it = find(side, ticks);
      if (it != levels.end() && it->ticks == ticks) levels.erase(it);
    } else {
      upsert(side, ticks, price, size);
    }
    if (seq != 0) {
      if (last_seq_ != 0 && seq != last_seq_ + 1) ++gaps_;
      last_seq_ = seq;
    }
  }

  /// Replace the whole book. All-or-nothing: on any error the book is unchanged.
  [[nodiscard]] BookStatus snapshot(std::span<const double> bid_px, std::span<const double> bid_sz,
                                    std::span<const double> ask_px, std::span<const double> ask_sz,
                                    std::uint64_t seq) {
    if (bid_px.size() != bid_sz.size() || ask_px.size() != ask_sz.size()) {
      return BookStatus::BadLength;
    }
    if (seq != 0 && last_seq_ != 0 && seq <= last_seq_) return BookStatus::Stale;
    std::vector<Level> bids;
    std::vector<Level> asks;
    if (auto s = build_side(bid_px, bid_sz, bids); s != BookStatus::Ok) return s;
    if (auto s = build_side(ask_px, ask_sz, asks); s != BookStatus::Ok) return s;
    std::sort(bids.begin(), bids.end(), [](const Level& a, const Level& b) { return a.ticks < b.ticks; });
    std::sort(asks.begin(), asks.end(), [](const Level& a, const Level& b) { return a.ticks > b.ticks; });
    // Duplicates are looked for before zero-size levels are dropped: {10.00: 5, 10.00: 0} is
    // ambiguous, not a level of 5.
    for (std::size_t i = 1; i < bids.size(); ++i) {
      if (bids[i].ticks == bids[i - 1].ticks) return BookStatus::Duplicate;
    }
    for (std::size_t i = 1; i < asks.size(); ++i) {
      if (asks[i].ticks == asks[i - 1].ticks) return BookStatus::Duplicate;
    }
    std::erase_if(bids, [](const Level& l) { return l.size == 0.0; });
    std::erase_if(asks, [](const Level& l) { return l.size == 0.0; });
    if (!bids.empty() && !asks.empty() && bids.back().ticks >= asks.back().ticks) {
      return BookStatus::Crossed;
    }
    bids_ = std::move(bids);
    asks_ = std::move(asks);
    if (seq != 0) last_seq_ = seq;
    ++snapshots_;
    return BookStatus::Ok;
  }

  void clear() noexcept {
    bids_.clear();
    asks_.clear();
  }

  [[nodiscard]] double tick_size() const noexcept { return tick_size_; }
  [[nodiscard]] std::uint64_t last_seq() const noexcept { return last_seq_; }
  [[nodiscard]] std::uint64_t gaps() const noexcept { return gaps_; }
  [[nodiscard]] std::uint64_t snapshots() const noexcept { return snapshots_; }
  [[nodiscard]] std::size_t depth(Side side) const noexcept {
    return side == Side::Bid ? bids_.size() : asks_.size();
  }
  [[nodiscard]] bool empty() const noexcept { return bids_.empty() && asks_.empty(); }

  [[nodiscard]] double best_bid_px() const noexcept { return bids_.empty() ? nan() : bids_.back().price; }
  [[nodiscard]] double best_bid_sz() const noexcept { return bids_.empty() ? nan() : bids_.back().size; }
  [[nodiscard]] double best_ask_px() const noexcept { return asks_.empty() ? nan() : asks_.back().price; }
  [[nodiscard]] double best_ask_sz() const noexcept { return asks_.empty() ? nan() : asks_.back().size; }

  [[nodiscard]] double mid() const noexcept { return 0.5 * (best_bid_px() + best_ask_px()); }
  [[nodiscard]] double spread() const noexcept { return best_ask_px() - best_bid_px(); }
  /// Size-weighted mid: leans toward the side with less size (the price more likely to trade next).
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
    const auto& levels = side == Side::Bid ? bids_ : asks_;
    const std::size_t k = std::min(n, levels.size());
    for (std::size_t i = 0; i < k; ++i) {
      const Level& l = levels[levels.size() - 1 - i];
      px_out[i] = l.price;
      sz_out[i] = l.size;
    }
    return k;
  }

  /// Levels of one side, worst first (best at the back).
  [[nodiscard]] std::span<const Level> levels(Side side) const noexcept {
    return side == Side::Bid ? std::span<const Level>(bids_) : std::span<const Level>(asks_);
  }

 private:
  static constexpr double nan() noexcept { return std::numeric_limits<double>::quiet_NaN(); }

  // Nearest tick count for 0 <= t < kMaxTicks; anything else (NaN included) maps to 0.
  [[nodiscard]] static std::int64_t round_ticks(double t) noexcept {
    return t >= 0.0 && t < kMaxTicks ? static_cast<std::int64_t>(t + 0.5) : 0;
  }

  // Price (already finite and positive) to ticks; BadPrice beyond kMaxTicks, OffTick off-grid.
  [[nodiscard]] BookStatus to_ticks(double price, std::int64_t& ticks) const noexcept {
    const double t = price * inv_tick_;
    if (!(t < kMaxTicks)) return BookStatus::BadPrice;
    ticks = round_ticks(t);
    if (ticks == 0 || std::fabs(t - static_cast<double>(ticks)) > kTickAbsTol + kTickRelTol * t) {
      return BookStatus::OffTick;
    }
    return BookStatus::Ok;
  }

  // Bids ascending, asks descending: best at the back of both.
  [[nodiscard]] std::vector<Level>::iterator find(std::uint8_t side, std::int64_t ticks) noexcept {
    if (side == 0) {
      return std::lower_bound(bids_.begin(), bids_.end(), ticks,
                              [](const Level& l, std::int64_t t) { return l.ticks < t; });
    }
    return std::lower_bound(asks_.begin(), asks_.end(), ticks,
                            [](const Level& l, std::int64_t t) { return l.ticks > t; });
  }

  void upsert(std::uint8_t side, std::int64_t ticks, double price, double size) {
    auto& levels = side == 0 ? bids_ : asks_;
    // Most updates touch the best level: check the back before searching.
    if (!levels.empty() && levels.back().ticks == ticks) {
      levels.back().size = size;
      return;
    }
    const auto it = find(side, ticks);
    if (it != levels.end() && it->ticks == ticks) {
      it->size = size;
    } else {
      levels.insert(it, Level{ticks, price, size});
    }
  }

  [[nodiscard]] BookStatus record_seq(std::uint64_t seq) noexcept {
    if (seq == 0) return BookStatus::Ok;
    const bool gap = last_seq_ != 0 && seq != last_seq_ + 1;
    last_seq_ = seq;
    if (gap) {
      ++gaps_;
      return BookStatus::Gap;
    }
    return BookStatus::Ok;
  }

  [[nodiscard]] BookStatus build_side(std::span<const double> px, std::span<const double> sz,
                                      std::vector<Level>& out) const {
    out.reserve(px.size());
    for (std::size_t i = 0; i < px.size(); ++i) {
      if (!std::isfinite(px[i]) || px[i] <= 0.0) return BookStatus::BadPrice;
      if (!std::isfinite(sz[i]) || sz[i] < 0.0) return BookStatus::BadSize;
      std::int64_t t = 0;
      if (auto s = to_ticks(px[i], t); s != BookStatus::Ok) return s;
      out.push_back(Level{t, px[i], sz[i]});
    }
    return BookStatus::Ok;
  }

  double tick_size_;
  double inv_tick_;
  std::vector<Level> bids_;
  std::vector<Level> asks_;
  std::uint64_t last_seq_ = 0;
  std::uint64_t gaps_ = 0;
  std::uint64_t snapshots_ = 0;
};

}  // namespace tickserver
