// Simulated market: deterministic trades and consistent L2 deltas for many symbols from a seed.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tickserver {

/// xoshiro256** (Blackman & Vigna): fast, and the same sequence on every platform, unlike the
/// distributions of <random>, whose output is implementation-defined.
class Xoshiro256 {
 public:
  explicit Xoshiro256(std::uint64_t seed) noexcept {
    for (auto& w : s_) {
      seed += 0x9E3779B97F4A7C15ULL;  // splitmix64 expands the seed
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
      w = z ^ (z >> 31);
    }
  }
  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  /// Uniform in [0, 1).
  double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform integer in [0, n).
  std::uint64_t below(std::uint64_t n) noexcept {
    return static_cast<std::uint64_t>(uniform() * static_cast<double>(n));
  }
  /// Standard normal (Marsaglia polar method, spare value cached).
  double normal() noexcept {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u = 0.0;
    double v = 0.0;
    double s = 0.0;
    do {
      u = 2.0 * uniform() - 1.0;
      v = 2.0 * uniform() - 1.0;
      s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    const double m = std::sqrt(-2.0 * std::log(s) / s);
    spare_ = v * m;
    has_spare_ = true;
    return u * m;
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept {
    return (x << k) | (x >> (64 - k));
  }
  std::uint64_t s_[4]{};
  double spare_ = 0.0;
  bool has_spare_ = false;
};

struct SimParams {
  double trade_prob = 0.25;        ///< share of events that are trades (the rest: book changes)
  double move_prob = 0.10;         ///< share of book events that re-price the fair value
  double tick_vol = 1.0;           ///< typical fair-value move per re-price, in ticks
  double vol_persistence = 0.995;  ///< AR(1) coefficient of log-volatility (clustering)
  double vol_of_vol = 0.08;        ///< shock size of log-volatility
  double jump_prob = 0.0005;       ///< chance a re-price is a jump
  double jump_ticks = 12.0;        ///< typical jump size, in ticks
  std::size_t levels = 10;         ///< L2 levels per side
  double lot = 100.0;              ///< sizes are multiples of this
};

/// Columnar output of `MarketSim::generate`; cleared by each call.
struct SimOutput {
  // trades
  std::vector<std::uint32_t> t_symbol;
  std::vector<std::int64_t> t_ts;
  std::vector<double> t_price;
  std::vector<double> t_size;
  std::vector<std::uint8_t> t_flags;  // 1 buy aggressor, 2 sell aggressor
  // L2 deltas (per-symbol book sequence numbers, contiguous from 1)
  std::vector<std::uint32_t> d_symbol;
  std::vector<std::int64_t> d_ts;
  std::vector<std::uint8_t> d_side;
  std::vector<double> d_price;
  std::vector<double> d_size;
  std::vector<std::uint64_t> d_seq;

  void clear() noexcept {
    t_symbol.clear(); t_ts.clear(); t_price.clear(); t_size.clear(); t_flags.clear();
    d_symbol.clear(); d_ts.clear(); d_side.clear(); d_price.clear(); d_size.clear(); d_seq.clear();
  }
};

/// A market of independent symbols. Each keeps a ladder of `levels` price levels per side
/// around a fair value that follows a random walk with stochastic volatility (log-vol is
/// AR(1): calm and busy spells cluster) and rare jumps. Every delta leaves the book valid
/// (bid < ask; deletes before inserts when the ladder shifts) and trades print at the touch,
/// so the stream passes the book's checked path unchanged.
class MarketSim {
 public:
  MarketSim(std::uint64_t seed, std::vector<std::uint32_t> symbol_ids, std::vector<double> prices,
            std::vector<double> tick_sizes, SimParams params)
      : rng_(seed), p_(params) {
    if (symbol_ids.size() != prices.size() || prices.size() != tick_sizes.size()) {
      throw std::invalid_argument("symbol_ids, prices and tick_sizes must have the same length");
    }
    if (symbol_ids.empty()) throw std::invalid_argument("at least one symbol is needed");
    if (p_.levels < 2 || p_.levels > 200) throw std::invalid_argument("levels must be in [2, 200]");
    syms_.reserve(symbol_ids.size());
    for (std::size_t i = 0; i < symbol_ids.size(); ++i) {
      if (!(prices[i] > 0.0) || !(tick_sizes[i] > 0.0)) {
        throw std::invalid_argument("prices and tick sizes must be positive");
      }
      Sym s;
      s.id = symbol_ids[i];
      s.tick = tick_sizes[i];
      s.fair = prices[i] / tick_sizes[i];
      s.best_bid = static_cast<std::int64_t>(std::floor(s.fair)) - 1;
      if (s.best_bid - static_cast<std::int64_t>(p_.levels) < 1) {
        throw std::invalid_argument("price too low for the ladder at this tick size");
      }
      s.best_ask = s.best_bid + 2;
      s.bid_sz.assign(p_.levels, 0.0);
      s.ask_sz.assign(p_.levels, 0.0);
      for (std::size_t k = 0; k < p_.levels; ++k) {
        s.bid_sz[k] = rand_size();
        s.ask_sz[k] = rand_size();
      }
      syms_.push_back(std::move(s));
    }
  }

  /// Initial book of symbol `i` (index in construction order), best first: the deltas that
  /// follow assume it was applied as a snapshot.
  void book(std::size_t i, std::vector<double>& bid_px, std::vector<double>& bid_sz,
            std::vector<double>& ask_px, std::vector<double>& ask_sz) const {
    const Sym& s = syms_.at(i);
    bid_px.clear(); bid_sz.clear(); ask_px.clear(); ask_sz.clear();
    for (std::size_t k = 0; k < p_.levels; ++k) {
      bid_px.push_back(px(s, s.best_bid - static_cast<std::int64_t>(k)));
      bid_sz.push_back(s.bid_sz[k]);
      ask_px.push_back(px(s, s.best_ask + static_cast<std::int64_t>(k)));
      ask_sz.push_back(s.ask_sz[k]);
    }
  }

  [[nodiscard]] std::uint64_t book_seq(std::size_t i) const { return syms_.at(i).seq; }
  [[nodiscard]] std::size_t size() const noexcept { return syms_.size(); }

  /// Generate `n` events; event j is stamped ts_start + j * ts_step.
  void generate(std::size_t n, std::int64_t ts_start, std::int64_t ts_step, SimOutput& out) {
    out.clear();
    for (std::size_t j = 0; j < n; ++j) {
      const std::int64_t ts = ts_start + static_cast<std::int64_t>(j) * ts_step;
      Sym& s = syms_[rng_.below(syms_.size())];
      if (rng_.uniform() < p_.trade_prob) {
        trade(s, ts, out);
      } else if (rng_.uniform() < p_.move_prob) {
        reprice(s, ts, out);
      } else {
        resize(s, ts, out);
      }
    }
  }

 private:
  struct Sym {
    std::uint32_t id = 0;
    double tick = 0.01;
    double fair = 0.0;       // fair value in ticks
    double log_vol = 0.0;    // AR(1) log-volatility
    std::int64_t best_bid = 0;
    std::int64_t best_ask = 0;
    std::vector<double> bid_sz;  // [0] = best
    std::vector<double> ask_sz;
    std::uint64_t seq = 0;
  };

  static double px(const Sym& s, std::int64_t ticks) noexcept {
    // Round to 10 decimals so prices print cleanly and map back to whole ticks exactly.
    return std::round(static_cast<double>(ticks) * s.tick * 1e10) / 1e10;
  }

  double rand_size() noexcept {
    return p_.lot * static_cast<double>(1 + rng_.below(20));
  }

  void delta(Sym& s, std::int64_t ts, std::uint8_t side, std::int64_t ticks, double size,
             SimOutput& o) {
    o.d_symbol.push_back(s.id);
    o.d_ts.push_back(ts);
    o.d_side.push_back(side);
    o.d_price.push_back(px(s, ticks));
    o.d_size.push_back(size);
    o.d_seq.push_back(++s.seq);
  }

  // Shift the ladder one tick up (+1) or down (-1), emitting deletes before inserts.
  void shift(Sym& s, int dir, std::int64_t ts, SimOutput& o) {
    const auto L = static_cast<std::int64_t>(p_.levels);
    if (dir > 0) {
      // Asks: the best ask leaves (it would cross the new bid), a new worst ask appears.
      delta(s, ts, 1, s.best_ask, 0.0, o);
      s.ask_sz.erase(s.ask_sz.begin());
      const double na = rand_size();
      s.ask_sz.push_back(na);
      delta(s, ts, 1, s.best_ask + L, na, o);
      ++s.best_ask;
      // Bids: the worst bid leaves, a new best bid appears one tick up.
      delta(s, ts, 0, s.best_bid - L + 1, 0.0, o);
      s.bid_sz.pop_back();
      const double nb = rand_size();
      s.bid_sz.insert(s.bid_sz.begin(), nb);
      ++s.best_bid;
      delta(s, ts, 0, s.best_bid, nb, o);
    } else {
      delta(s, ts, 0, s.best_bid, 0.0, o);
      s.bid_sz.erase(s.bid_sz.begin());
      const double nb = rand_size();
      s.bid_sz.push_back(nb);
      delta(s, ts, 0, s.best_bid - L, nb, o);
      --s.best_bid;
      delta(s, ts, 1, s.best_ask + L - 1, 0.0, o);
      s.ask_sz.pop_back();
      const double na = rand_size();
      s.ask_sz.insert(s.ask_sz.begin(), na);
      --s.best_ask;
      delta(s, ts, 1, s.best_ask, na, o);
    }
  }

  void reprice(Sym& s, std::int64_t ts, SimOutput& o) {
    s.log_vol = p_.vol_persistence * s.log_vol + p_.vol_of_vol * rng_.normal();
    double move = p_.tick_vol * std::exp(s.log_vol) * rng_.normal();
    if (rng_.uniform() < p_.jump_prob) move += p_.jump_ticks * rng_.normal();
    s.fair += move;
    const double floor_ticks = static_cast<double>(p_.levels) + 2.0;
    if (s.fair < floor_ticks) s.fair = floor_ticks;  // never walk below the ladder's depth
    // Move the ladder toward the fair value, at most levels-1 ticks per event.
    const auto target = static_cast<std::int64_t>(std::floor(s.fair)) - 1;
    std::int64_t steps = target - s.best_bid;
    const auto cap = static_cast<std::int64_t>(p_.levels) - 1;
    steps = std::clamp(steps, -cap, cap);
    for (std::int64_t k = 0; k < steps; ++k) shift(s, +1, ts, o);
    for (std::int64_t k = 0; k > steps; --k) shift(s, -1, ts, o);
    if (steps == 0) resize(s, ts, o);
  }

  void resize(Sym& s, std::int64_t ts, SimOutput& o) {
    const std::uint8_t side = rng_.uniform() < 0.5 ? 0 : 1;
    // Near-touch levels change most often, as in real books.
    const double u = rng_.uniform();
    auto k = static_cast<std::size_t>(u * u * static_cast<double>(p_.levels));
    k = std::min(k, p_.levels - 1);
    const double sz = rand_size();
    if (side == 0) {
      s.bid_sz[k] = sz;
      delta(s, ts, 0, s.best_bid - static_cast<std::int64_t>(k), sz, o);
    } else {
      s.ask_sz[k] = sz;
      delta(s, ts, 1, s.best_ask + static_cast<std::int64_t>(k), sz, o);
    }
  }

  void trade(Sym& s, std::int64_t ts, SimOutput& o) {
    // Aggressors lean with the fair value: buys more likely when fair is above the mid.
    const double mid = 0.5 * static_cast<double>(s.best_bid + s.best_ask);
    const double lean = std::clamp(0.5 + 0.25 * (s.fair - mid), 0.1, 0.9);
    const bool buy = rng_.uniform() < lean;
    std::vector<double>& touch = buy ? s.ask_sz : s.bid_sz;
    const double size = std::min(touch[0], p_.lot * static_cast<double>(1 + rng_.below(5)));
    o.t_symbol.push_back(s.id);
    o.t_ts.push_back(ts);
    o.t_price.push_back(px(s, buy ? s.best_ask : s.best_bid));
    o.t_size.push_back(size);
    o.t_flags.push_back(buy ? 1 : 2);
    const std::uint8_t side = buy ? 1 : 0;
    const std::int64_t at = buy ? s.best_ask : s.best_bid;
    const double left = touch[0] - size;
    if (left > 0.0) {
      touch[0] = left;
      delta(s, ts, side, at, left, o);
    } else {
      // The touch level is consumed: refill it (liquidity replenishes at the same price).
      touch[0] = rand_size();
      delta(s, ts, side, at, touch[0], o);
    }
  }

  Xoshiro256 rng_;
  SimParams p_;
  std::vector<Sym> syms_;
};

}  // namespace tickserver
