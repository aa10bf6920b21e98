// The engine: per-symbol rings, books, bars, indicators and rules fed by columnar batches.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tickserver/bank.hpp"
#include "tickserver/bars.hpp"
#include "tickserver/order_book.hpp"
#include "tickserver/platform.hpp"
#include "tickserver/ring_buffer.hpp"
#include "tickserver/signals.hpp"
#include "tickserver/symbols.hpp"

namespace tickserver {

/// Why a trade row was rejected (0 = accepted).
enum class TradeReject : std::uint8_t {
  Ok = 0,
  UnknownSymbol = 1,  ///< symbol id not registered
  BadPrice = 2,       ///< price not finite or not positive
  BadSize = 3,        ///< size not finite or negative
};

[[nodiscard]] constexpr const char* to_string(TradeReject r) noexcept {
  switch (r) {
    case TradeReject::Ok: return "ok";
    case TradeReject::UnknownSymbol: return "unknown symbol id";
    case TradeReject::BadPrice: return "price must be finite and positive";
    case TradeReject::BadSize: return "size must be finite and non-negative";
  }
  return "unknown";
}

/// Book-update rejection code for a row whose symbol id is not registered (the other codes are
/// BookStatus values).
inline constexpr std::uint8_t kBookUnknownSymbol = 255;

/// One configured rule. `a` and `b` name outputs of indicators of the same interval, or "close"
/// (the trade price for interval 0, the bar close otherwise); for breakout `a` names a bbands
/// indicator.
struct RuleSpec {
  std::string name;
  RuleKind kind = RuleKind::Crossover;
  std::int64_t interval = 0;
  std::string a;
  std::string b;
  double above = kNaN;
  double below = kNaN;
};

[[nodiscard]] RuleKind rule_kind_from_string(std::string_view s);

struct EngineConfig {
  std::size_t ring_capacity = 100'000;
  std::size_t bar_capacity = 1'000;
  std::vector<std::int64_t> intervals;  ///< bar intervals in ns (> 0, distinct)
  std::vector<IndicatorSpec> indicators;
  std::vector<RuleSpec> rules;
  double tick_size = 1e-4;
};

/// Closed bars, as columns.
struct BarColumns {
  std::vector<std::int64_t> interval;
  std::vector<std::uint32_t> symbol_id;
  std::vector<std::int64_t> ts_event;  ///< bar open
  std::vector<double> open, high, low, close, volume, vwap;
  std::vector<std::uint64_t> trades;
  [[nodiscard]] std::size_t size() const noexcept { return ts_event.size(); }
  void clear() noexcept;
};

/// Signal firings, as columns.
struct SignalColumns {
  std::vector<std::uint16_t> rule_id;
  std::vector<std::uint32_t> symbol_id;
  std::vector<std::int64_t> ts_event;  ///< the trade's ts (interval 0) or the bar's open
  std::vector<std::int8_t> direction;
  std::vector<double> value;
  [[nodiscard]] std::size_t size() const noexcept { return ts_event.size(); }
  void clear() noexcept;
};

/// Indicator values at bar close (warm-up NaNs omitted), as columns.
struct IndicatorColumns {
  std::vector<std::int64_t> interval;
  std::vector<std::uint32_t> symbol_id;
  std::vector<std::int64_t> ts_event;  ///< bar open
  std::vector<std::uint16_t> output_id;  ///< index into Engine::indicator_names(interval)
  std::vector<double> value;
  [[nodiscard]] std::size_t size() const noexcept { return ts_event.size(); }
  void clear() noexcept;
};

/// What one ingest call produced.
struct IngestResult {
  std::vector<std::int64_t> rejected;      ///< row indices
  std::vector<std::uint8_t> reject_reason;  ///< TradeReject codes
  std::uint64_t late = 0;                   ///< trades late for at least one interval
  BarColumns bars;
  SignalColumns signals;
  IndicatorColumns indicators;

  [[nodiscard]] bool empty() const noexcept {
    return rejected.empty() && late == 0 && bars.size() == 0 && signals.size() == 0 &&
           indicators.size() == 0;
  }
  void clear() noexcept;
};

/// What one book call produced.
struct BookResult {
  std::vector<std::int64_t> rejected;  ///< row indices
  std::vector<std::uint8_t> reasons;   ///< BookStatus codes, or kBookUnknownSymbol
  std::vector<std::uint32_t> changed;  ///< symbols whose top of book changed, each once
};

/// Running totals since construction.
struct EngineCounters {
  std::uint64_t trades = 0;
  std::uint64_t trades_rejected = 0;
  std::uint64_t late = 0;
  std::uint64_t bars = 0;
  std::uint64_t signals = 0;
  std::uint64_t indicator_values = 0;
  std::uint64_t book_updates = 0;
  std::uint64_t book_rejected = 0;
  std::uint64_t quotes = 0;
  std::uint64_t book_snapshots = 0;
};

/// Drives every per-symbol structure from columnar batches.
///
/// Not thread-safe: one caller at a time. Symbol ids come from the registry given at
/// construction, which must outlive the engine; after interning new symbols call
/// sync_symbols(), until then their ids are rejected as unknown.
class Engine {
 public:
  Engine(const SymbolRegistry& registry, EngineConfig config);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Create state for symbols interned since the last call.
  void sync_symbols();
  [[nodiscard]] std::size_t symbol_count() const noexcept { return n_syms_; }

  /// Ingest trades (equal-length columns; std::invalid_argument otherwise). Valid rows go to the
  /// ring, every interval's bars, the tick indicators and rules; invalid rows are reported in
  /// out.rejected / out.reject_reason. Results are appended to `out`.
  void on_trades(std::span<const SymbolId> symbol_id, std::span<const std::int64_t> ts_event,
                 std::span<const double> price, std::span<const double> size,
                 std::span<const std::uint64_t> seq, std::span<const std::uint8_t> flags,
                 IngestResult& out);
  /// Ingest one trade; returns why it was rejected (and then changes nothing but a counter).
  [[nodiscard]] TradeReject on_trade(SymbolId symbol_id, std::int64_t ts_event, double price,
                                     double size, std::uint64_t seq, std::uint8_t flags,
                                     IngestResult& out);
  /// Close every forming bar whose end is at or before `now`; later trades older than the
  /// interval containing `now` are late.
  void advance(std::int64_t now, IngestResult& out);

  void on_book_deltas(std::span<const SymbolId> symbol_id, std::span<const std::uint8_t> side,
                      std::span<const double> price, std::span<const double> size,
                      std::span<const std::uint64_t> seq, bool checked, BookResult& out);
  /// Top-of-book quotes: each row replaces the symbol's book with one level per side.
  void on_quotes(std::span<const SymbolId> symbol_id, std::span<const double> bid_px,
                 std::span<const double> bid_sz, std::span<const double> ask_px,
                 std::span<const double> ask_sz, std::span<const std::uint64_t> seq,
                 BookResult& out);
  /// Replace one book. Throws std::out_of_range for an unknown symbol.
  [[nodiscard]] BookStatus book_snapshot(SymbolId symbol_id, std::span<const double> bid_px,
                                         std::span<const double> bid_sz,
                                         std::span<const double> ask_px,
                                         std::span<const double> ask_sz, std::uint64_t seq);
  /// Replace a symbol's book by an empty one with this tick size.
  void set_tick_size(SymbolId symbol_id, double tick_size);

  /// Daily bars and session VWAP follow these session starts (strictly increasing).
  void set_day_boundaries(std::vector<std::int64_t> starts);

  // Snapshots. Unknown symbols throw std::out_of_range, unknown intervals std::invalid_argument.
  [[nodiscard]] const TradeRing& ring(SymbolId symbol_id) const;
  [[nodiscard]] const OrderBook& book(SymbolId symbol_id) const;
  [[nodiscard]] const BarSeries& bars(SymbolId symbol_id, std::int64_t interval) const;
  [[nodiscard]] const std::vector<std::string>& indicator_names(std::int64_t interval) const;
  /// Indicator outputs; for a bar interval with forming = true and a forming bar, the forming
  /// bar's provisional values.
  [[nodiscard]] std::vector<double> indicator_values(SymbolId symbol_id, std::int64_t interval,
                                                     bool forming) const;
  [[nodiscard]] const std::vector<std::int64_t>& intervals() const noexcept { return intervals_; }
  [[nodiscard]] std::vector<std::string> rule_names() const;
  [[nodiscard]] const EngineCounters& counters() const noexcept { return counters_; }
  [[nodiscard]] std::size_t memory_bytes() const noexcept;
  [[nodiscard]] const EngineConfig& config() const noexcept { return config_; }

 private:
  struct CompiledRule {
    RuleKind kind;
    std::uint16_t id;
    std::uint32_t a;  ///< output slot (n_outputs = close); breakout: upper band
    std::uint32_t b;  ///< output slot; breakout: lower band
    double above;
    double below;
    std::int32_t a_col = -1;  ///< tick rules: run_ticks columns of a and b (-1: the price)
    std::int32_t b_col = -1;
  };
  /// A rule that fired during one evaluation, before it is written out.
  struct Fired {
    double value;
    std::uint16_t id;
    std::int8_t direction;
  };
  /// A signal of a bar close inside a run of trades, kept until the run's tick signals up to
  /// that trade are written (row order: a trade's tick signals come before its bars' signals).
  struct BarFired {
    std::uint32_t index;  ///< trade index within the chunk
    Signal signal;
  };
  /// The rules of one bank, grouped by kind (no per-rule dispatch on the hot path).
  struct RuleGroup {
    std::vector<CompiledRule> crossover, threshold, breakout;
    [[nodiscard]] bool empty() const noexcept {
      return crossover.empty() && threshold.empty() && breakout.empty();
    }
  };

  struct SymbolState {
    SymbolState(const Engine& e);
    TradeRing ring;
    OrderBook book;
    std::vector<BarSeries> series;      // one per bar interval
    std::vector<Bank> banks;            // [0] = tick, [k + 1] = intervals_[k]
    std::vector<rules::State> rule_state;  // one per rule
    std::uint64_t book_stamp = 0;       // book call that last saved top_before
    double top_before[4] = {0, 0, 0, 0};
  };

  /// Trades are processed in chunks of kChunk (bars, rule scans and signal output), and the
  /// indicator kernels in sub-blocks of kBlock: each kind's recurrence is latency-bound, and
  /// short blocks let the CPU overlap one kind's loop with the next kind's.
  static constexpr std::size_t kChunk = 256;
  static constexpr std::size_t kBlock = 32;
  static constexpr std::uint32_t kNoRun = 0xFFFFFFFFu;
  /// Runs shorter than this go through process_one(), trade by trade.
  static constexpr std::size_t kShortRun = 8;

  [[nodiscard]] TradeReject check(SymbolId symbol_id, double price, double size) const noexcept;
  /// Store n valid trades of one symbol in its ring and process them in order (`rows`: their
  /// row indices when the batch was grouped by symbol, else null).
  void process_run(SymbolId symbol_id, const std::int64_t* ts, const double* price,
                   const double* size, const std::uint64_t* seq, const std::uint8_t* flags,
                   std::size_t n, const std::uint32_t* rows, IngestResult& out);
  /// process_run() for trades already stored in the ring.
  void process_stored(SymbolState& st, SymbolId symbol_id, const std::int64_t* ts,
                      const double* price, const double* size, std::size_t n,
                      const std::uint32_t* rows, IngestResult& out);
  /// One stored trade, row by row (short runs): bars, tick indicators and rules as the block
  /// path computes them. `row` tags its outputs in a grouped batch.
  void process_one(SymbolState& st, SymbolId symbol_id, std::int64_t ts, double price,
                   double size, std::int64_t row, IngestResult& out);
  /// Store one valid trade in its symbol's ring and process_one() it (ungrouped calls).
  void store_and_process_one(SymbolState& st, SymbolId symbol_id, std::int64_t ts, double price,
                             double size, std::uint64_t seq, std::uint8_t flags,
                             IngestResult& out);
  /// The bars of a chunk of one symbol's trades: trades inside every forming bar in bulk, the
  /// others (opening, rolling or late) one by one.
  void run_bars(SymbolState& st, SymbolId symbol_id, const std::int64_t* ts, const double* price,
                const double* size, std::size_t n, const std::uint32_t* rows, IngestResult& out);
  /// Evaluate the tick rules over a chunk's columns; returns how many trades fired a rule.
  std::size_t scan_tick_rules(SymbolState& st, const double* price, std::size_t n) noexcept;
  /// Write the chunk's tick-rule firings and bar signals in row order.
  void emit_chunk_signals(SymbolId symbol_id, const std::int64_t* ts, const double* price,
                          std::size_t nt, const std::uint32_t* rows, IngestResult& out);
  /// A bar closed: write it, update its interval's indicators and rules. `run_index` is the
  /// trade's index within the current chunk (its signals wait in bar_fired_), or kNoRun.
  void on_bar_close(SymbolState& st, SymbolId symbol_id, std::size_t k, const Bar& bar,
                    IngestResult& out, std::uint32_t run_index);
  /// Evaluate a bar bank's rules on its values into fired_; returns how many fired.
  std::size_t eval_rules(SymbolState& st, std::size_t bank, const double* v) noexcept;
  /// Write the n firings in fired_ (tagged with row_ in a grouped batch).
  void emit_signals(std::size_t n, SymbolId symbol_id, std::int64_t ts, IngestResult& out);
  /// on_trades for a large batch of several symbols: rows are partitioned by symbol (stable),
  /// each symbol's run is processed with its state hot in cache, and the outputs are put back
  /// in row order. Results are identical to row-by-row processing.
  void on_trades_grouped(std::span<const SymbolId> symbol_id,
                         std::span<const std::int64_t> ts_event, std::span<const double> price,
                         std::span<const double> size, std::span<const std::uint64_t> seq,
                         std::span<const std::uint8_t> flags, IngestResult& out);
  /// Put the outputs appended since the given sizes back in row order (row tags below).
  void restore_row_order(IngestResult& out, std::size_t bars0, std::size_t indicators0,
                         std::size_t signals0);
  /// Clear the per-call buffers after a call's outputs were written.
  void end_call() noexcept;
  [[nodiscard]] std::size_t bank_index(std::int64_t interval) const;
  [[nodiscard]] SymbolState& state(SymbolId symbol_id) const;
  void touch_book(SymbolState& st, SymbolId symbol_id, BookResult& out) noexcept;
  void finish_book_call(BookResult& out);

  const SymbolRegistry* registry_;
  EngineConfig config_;
  std::vector<std::int64_t> intervals_;
  std::shared_ptr<SessionCalendar> calendar_;
  std::vector<BarClock> clocks_;
  std::size_t n_intervals_ = 0;
  std::vector<std::unique_ptr<BankPlan>> plans_;  // [0] = tick
  std::vector<RuleGroup> rules_;  // per bank
  std::vector<CompiledRule> tick_rules_;  // rules_[0] in evaluation order
  std::vector<Fired> fired_;      // scratch: one slot per rule
  std::vector<double> values_;    // scratch: a bar bank's outputs and close
  // Scratch of one chunk: run_ticks' output columns, a rule's observation codes, each tick
  // rule's direction per trade (kChunk per rule), their OR, the trades where some rule fired,
  // each rule's signal-value column, and the signals of bar closes inside the chunk.
  std::vector<double> tick_cols_;
  std::vector<std::uint8_t> codes_;
  std::vector<std::int8_t> fire_dir_;
  std::vector<std::int8_t> fire_any_;
  std::vector<std::uint32_t> fire_ticks_;
  std::vector<const double*> fire_value_;
  std::vector<BarFired> bar_fired_;
  // Row tags of the outputs of the current call (used to restore row order after grouping).
  std::int64_t row_ = 0;
  bool tag_signals_ = false;  // a grouped batch: signals need row tags
  std::vector<std::int64_t> bar_rows_, indicator_rows_, signal_rows_;
  // Scratch of on_trades_grouped: the valid rows, partitioned by symbol (only their row index
  // when every symbol's rows fit in its ring, which then holds the partitioned trades).
  std::vector<std::uint32_t> group_start_;
  std::vector<TradeRing::Writer> writers_;
  std::vector<std::uint32_t> g_row_;
  std::vector<std::int64_t> g_ts_;
  std::vector<double> g_px_, g_sz_;
  std::vector<std::uint64_t> g_seq_;
  std::vector<std::uint8_t> g_flags_;
  bool tick_work_ = false;       // tick indicators or tick rules exist
  std::vector<std::string> rule_names_;
  std::vector<std::unique_ptr<SymbolState>> syms_;
  std::size_t n_syms_ = 0;  // syms_.size(), kept in a plain member for the hot path
  std::vector<SymbolId> book_touched_;
  std::uint64_t book_call_ = 0;
  EngineCounters counters_;
};

}  // namespace tickserver
