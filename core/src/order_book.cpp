// Out-of-line batch update of the L2 order book, compiled with the core library's flags.
#include "tickserver/order_book.hpp"

#include <stdexcept>

namespace tickserver {

std::size_t OrderBook::apply_batch(std::span<const std::uint8_t> side,
                                   std::span<const double> price, std::span<const double> size,
                                   std::span<const std::uint64_t> seq, bool checked,
                                   std::vector<std::int64_t>& rejected_rows,
                                   std::vector<std::uint8_t>& reasons) {
  const std::size_t n = side.size();
  if (price.size() != n || size.size() != n || seq.size() != n) {
    throw std::invalid_argument("apply_batch: side, price, size and seq differ in length");
  }
  const std::uint8_t* sd = side.data();
  const double* px = price.data();
  const double* sz = size.data();
  const std::uint64_t* sq = seq.data();
  if (!checked) {
    for (std::size_t i = 0; i < n; ++i) apply_unchecked(sd[i], px[i], sz[i], sq[i]);
    return 0;
  }
  std::size_t rejected = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const BookStatus s = apply(sd[i], px[i], sz[i], sq[i]);
    if (!applied(s)) [[unlikely]] {
      rejected_rows.push_back(static_cast<std::int64_t>(i));
      reasons.push_back(static_cast<std::uint8_t>(s));
      ++rejected;
    }
  }
  return rejected;
}

}  // namespace tickserver
