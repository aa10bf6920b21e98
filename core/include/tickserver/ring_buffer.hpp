// Fixed-capacity, overwrite-oldest ring buffers: the columnar per-symbol trade ring, and bars.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <type_traits>

#include "tickserver/platform.hpp"

namespace tickserver {

/// Where the last n entries of a ring sit in its storage, oldest first: the index range
/// [first, first + first_len) followed by [0, second_len). Each range is contiguous, so a caller
/// can view a column without copying.
struct RingSlices {
  std::size_t first = 0;
  std::size_t first_len = 0;
  std::size_t second_len = 0;
  [[nodiscard]] std::size_t size() const noexcept { return first_len + second_len; }
};

namespace detail {

/// Slices of the last `n` of `size` entries in a ring of `capacity` whose next write goes to `head`.
[[nodiscard]] inline RingSlices last_slices(std::size_t head, std::size_t size,
                                            std::size_t capacity, std::size_t n) noexcept {
  n = std::min(n, size);
  const std::size_t start = head >= n ? head - n : head + capacity - n;
  if (start + n <= capacity) return {start, n, 0};
  return {start, capacity - start, n - (capacity - start)};
}

}  // namespace detail

/// A ring of plain records (used for closed bars). Storage is allocated on the first push and
/// never initialised beforehand, so an idle ring costs no resident memory.
template <typename T>
class Ring {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_default_constructible_v<T>,
                "Ring<T> stores plain records in uninitialised storage: T must be trivially "
                "copyable and trivially default-constructible");

 public:
  explicit Ring(std::size_t capacity) : capacity_(capacity) {
    if (capacity == 0) throw std::invalid_argument("ring capacity must be positive");
  }

  /// Append `v`, overwriting the oldest entry when full. Allocates on the first call.
  void push(const T& v) {
    if (!data_) [[unlikely]] data_ = std::make_unique_for_overwrite<T[]>(capacity_);
    data_[head_] = v;
    if (++head_ == capacity_) head_ = 0;
    ++pushed_;
  }

  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] std::size_t size() const noexcept {
    return pushed_ < capacity_ ? static_cast<std::size_t>(pushed_) : capacity_;
  }
  [[nodiscard]] bool empty() const noexcept { return pushed_ == 0; }
  /// Entries ever pushed, including those since overwritten.
  [[nodiscard]] std::uint64_t total_pushed() const noexcept { return pushed_; }
  /// Entries lost to overwriting.
  [[nodiscard]] std::uint64_t overwritten() const noexcept { return pushed_ - size(); }

  /// The newest entry. Precondition: !empty().
  [[nodiscard]] const T& back() const noexcept {
    assert(!empty());
    return data_[head_ == 0 ? capacity_ - 1 : head_ - 1];
  }
  /// The i-th oldest retained entry (0 = oldest). Precondition: i < size().
  [[nodiscard]] const T& operator[](std::size_t i) const noexcept {
    assert(i < size());
    return data_[physical(i)];
  }
  [[nodiscard]] RingSlices last(std::size_t n) const noexcept {
    return detail::last_slices(head_, size(), capacity_, n);
  }
  /// Raw storage (capacity() entries, valid where RingSlices point); null before the first push.
  [[nodiscard]] const T* data() const noexcept { return data_.get(); }

  /// Copy the last `n` entries, oldest first, into `out`; return how many were copied.
  std::size_t copy_last(std::size_t n, T* out) const noexcept {
    const RingSlices s = last(n);
    if (s.size() == 0) return 0;
    std::copy_n(data_.get() + s.first, s.first_len, out);
    std::copy_n(data_.get(), s.second_len, out + s.first_len);
    return s.size();
  }

  [[nodiscard]] std::size_t memory_bytes() const noexcept {
    return data_ ? capacity_ * sizeof(T) : 0;
  }

 private:
  [[nodiscard]] std::size_t physical(std::size_t i) const noexcept {
    const std::size_t oldest = pushed_ < capacity_ ? 0 : head_;
    const std::size_t j = oldest + i;
    return j >= capacity_ ? j - capacity_ : j;
  }

  std::size_t capacity_;
  std::unique_ptr<T[]> data_;
  std::size_t head_ = 0;  // slot of the next write
  std::uint64_t pushed_ = 0;
};

/// Trade flags as stored in a TradeRing column. A distinct type rather than a plain byte: stores
/// through a character type may alias any object and would pessimise the code around push().
enum class TradeFlags : std::uint8_t {};

/// One trade as stored in a TradeRing.
struct TradeRecord {
  std::int64_t ts_event;
  double price;
  double size;
  std::uint64_t seq;
  std::uint8_t flags;
};

/// The recent trades of one symbol, stored as columns (ts_event, price, size, seq, flags) in
/// one allocation of 33 bytes per trade. Fixed capacity; when full, each push overwrites the
/// oldest trade and counts it in overwritten().
///
/// Storage is allocated by reserve() (untouched pages cost no resident memory) so that push()
/// itself never allocates and cannot throw.
class TradeRing {
 public:
  static constexpr std::size_t kBytesPerTrade = sizeof(std::int64_t) + sizeof(double) +
                                                sizeof(double) + sizeof(std::uint64_t) +
                                                sizeof(std::uint8_t);
  static_assert(kBytesPerTrade <= 40, "a stored trade must fit in 40 bytes");

  explicit TradeRing(std::size_t capacity) : capacity_(capacity) {
    if (capacity == 0) throw std::invalid_argument("ring capacity must be positive");
  }

  [[nodiscard]] bool allocated() const noexcept { return storage_ != nullptr; }

  /// Allocate the columns (idempotent). May throw std::bad_alloc.
  void reserve() {
    if (storage_) return;
    storage_ = std::make_unique_for_overwrite<std::byte[]>(capacity_ * kBytesPerTrade);
    std::byte* p = storage_.get();
    ts_ = reinterpret_cast<std::int64_t*>(p);
    price_ = reinterpret_cast<double*>(p + capacity_ * 8);
    size_ = reinterpret_cast<double*>(p + capacity_ * 16);
    seq_ = reinterpret_cast<std::uint64_t*>(p + capacity_ * 24);
    flags_ = reinterpret_cast<TradeFlags*>(p + capacity_ * 32);
  }

  /// Append one trade in O(1). Precondition: allocated().
  void push(std::int64_t ts_event, double price, double size, std::uint64_t seq,
            std::uint8_t flags) noexcept {
    assert(allocated());
    const std::size_t h = head_;  // a local: the column stores may alias the member
    ts_[h] = ts_event;
    price_[h] = price;
    size_[h] = size;
    seq_[h] = seq;
    flags_[h] = static_cast<TradeFlags>(flags);
    head_ = h + 1 == capacity_ ? 0 : h + 1;
    ++pushed_;
  }

  /// Append n trades in order, as n push() calls would (only the last capacity() are copied).
  /// Precondition: allocated().
  void push_many(const std::int64_t* ts_event, const double* price, const double* size,
                 const std::uint64_t* seq, const std::uint8_t* flags, std::size_t n) noexcept {
    assert(allocated());
    if (n == 1) {
      push(ts_event[0], price[0], size[0], seq[0], flags[0]);
      return;
    }
    std::size_t skip = 0;  // trades that would be overwritten within this call
    std::size_t h = head_;
    if (n > capacity_) {
      skip = n - capacity_;
      h = (h + skip) % capacity_;
    }
    const std::size_t m = n - skip;
    const std::size_t first = std::min(m, capacity_ - h);
    copy_in(h, skip, first, ts_event, price, size, seq, flags);
    copy_in(0, skip + first, m - first, ts_event, price, size, seq, flags);
    h += m;
    if (h >= capacity_) h -= capacity_;
    head_ = h;
    pushed_ += n;
  }

  /// Direct access for a caller that scatters many trades over many rings: write trades at
  /// head, head + 1, ... (wrapping at capacity), then commit() them. Precondition: allocated().
  struct Writer {
    std::int64_t* ts_event;
    double* price;
    double* size;
    std::uint64_t* seq;
    TradeFlags* flags;
    std::size_t head;
    std::size_t capacity;
    TICKSERVER_INLINE void push(std::int64_t t, double p, double q, std::uint64_t s,
                                std::uint8_t f) noexcept {
      const std::size_t h = head;
      ts_event[h] = t;
      price[h] = p;
      size[h] = q;
      seq[h] = s;
      flags[h] = static_cast<TradeFlags>(f);
      head = h + 1 == capacity ? 0 : h + 1;
    }
  };
  [[nodiscard]] Writer writer() noexcept {
    assert(allocated());
    return {ts_, price_, size_, seq_, flags_, head_, capacity_};
  }
  /// The writer wrote n trades and its head is now `head`.
  void commit(const Writer& w, std::uint64_t n) noexcept {
    head_ = w.head;
    pushed_ += n;
  }

  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] std::size_t size() const noexcept {
    return pushed_ < capacity_ ? static_cast<std::size_t>(pushed_) : capacity_;
  }
  [[nodiscard]] bool empty() const noexcept { return pushed_ == 0; }
  [[nodiscard]] std::uint64_t total_pushed() const noexcept { return pushed_; }
  [[nodiscard]] std::uint64_t overwritten() const noexcept { return pushed_ - size(); }

  /// The i-th oldest retained trade (0 = oldest). Precondition: i < size().
  [[nodiscard]] TradeRecord at(std::size_t i) const noexcept {
    assert(i < size());
    const std::size_t oldest = pushed_ < capacity_ ? 0 : head_;
    std::size_t j = oldest + i;
    if (j >= capacity_) j -= capacity_;
    return {ts_[j], price_[j], size_[j], seq_[j], static_cast<std::uint8_t>(flags_[j])};
  }
  /// The newest trade. Precondition: !empty().
  [[nodiscard]] TradeRecord back() const noexcept { return at(size() - 1); }

  /// Where the last `n` trades sit in the columns (zero-copy access, oldest first).
  [[nodiscard]] RingSlices last(std::size_t n) const noexcept {
    return detail::last_slices(head_, size(), capacity_, n);
  }
  // Raw columns of capacity() entries (null before reserve()); index them with last().
  [[nodiscard]] const std::int64_t* ts_column() const noexcept { return ts_; }
  [[nodiscard]] const double* price_column() const noexcept { return price_; }
  [[nodiscard]] const double* size_column() const noexcept { return size_; }
  [[nodiscard]] const std::uint64_t* seq_column() const noexcept { return seq_; }
  [[nodiscard]] const std::uint8_t* flags_column() const noexcept {
    return reinterpret_cast<const std::uint8_t*>(flags_);
  }

  /// Copy the last `n` trades, oldest first, into the given columns; return how many.
  std::size_t copy_last(std::size_t n, std::int64_t* ts_event, double* price, double* size,
                        std::uint64_t* seq, std::uint8_t* flags) const noexcept {
    const RingSlices s = last(n);
    copy_slice(s.first, s.first_len, 0, ts_event, price, size, seq, flags);
    copy_slice(0, s.second_len, s.first_len, ts_event, price, size, seq, flags);
    return s.size();
  }

  [[nodiscard]] std::size_t memory_bytes() const noexcept {
    return storage_ ? capacity_ * kBytesPerTrade : 0;
  }

 private:
  void copy_in(std::size_t to, std::size_t from, std::size_t len, const std::int64_t* ts_event,
               const double* price, const double* size, const std::uint64_t* seq,
               const std::uint8_t* flags) noexcept {
    if (len == 0) return;
    std::memcpy(ts_ + to, ts_event + from, len * sizeof(std::int64_t));
    std::memcpy(price_ + to, price + from, len * sizeof(double));
    std::memcpy(size_ + to, size + from, len * sizeof(double));
    std::memcpy(seq_ + to, seq + from, len * sizeof(std::uint64_t));
    std::memcpy(flags_ + to, flags + from, len);
  }

  void copy_slice(std::size_t from, std::size_t len, std::size_t to, std::int64_t* ts_event,
                  double* price, double* size, std::uint64_t* seq,
                  std::uint8_t* flags) const noexcept {
    if (len == 0) return;
    std::copy_n(ts_ + from, len, ts_event + to);
    std::copy_n(price_ + from, len, price + to);
    std::copy_n(size_ + from, len, size + to);
    std::copy_n(seq_ + from, len, seq + to);
    std::copy_n(reinterpret_cast<const std::uint8_t*>(flags_) + from, len, flags + to);
  }

  std::size_t capacity_;
  std::unique_ptr<std::byte[]> storage_;
  std::int64_t* ts_ = nullptr;
  double* price_ = nullptr;
  double* size_ = nullptr;
  std::uint64_t* seq_ = nullptr;
  TradeFlags* flags_ = nullptr;
  std::size_t head_ = 0;  // slot of the next write
  std::uint64_t pushed_ = 0;
};

}  // namespace tickserver
