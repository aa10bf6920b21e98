// Declarations of the per-area binding functions that make up tickserver._core, and the small
// numpy helpers they share.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace tickserver::py {

namespace nb = nanobind;

void bind_symbols(nb::module_& m);
void bind_book(nb::module_& m);
void bind_indicators(nb::module_& m);
void bind_engine(nb::module_& m);
void bind_sim(nb::module_& m);

/// Any CPU array, read-only. Columns are taken as AnyArray and checked by `column<T>` so a
/// wrong dtype or shape raises an error that names the argument (nanobind's own overload
/// error lists signatures, not the offending argument). Bind these with .noconvert().
using AnyArray = nb::ndarray<nb::ro, nb::device::cpu>;

/// numpy's name of a dtype, for error messages.
std::string dtype_name(nb::dlpack::dtype dt);

/// View `a` as a 1-D contiguous column of T; TypeError/ValueError naming `name` otherwise.
template <typename T>
std::span<const T> column(const AnyArray& a, const char* name) {
  if (a.dtype() != nb::dtype<T>()) {
    throw nb::type_error((std::string("argument '") + name + "' must have dtype " +
                          dtype_name(nb::dtype<T>()) + ", got " + dtype_name(a.dtype()))
                             .c_str());
  }
  if (a.ndim() != 1) {
    throw nb::value_error((std::string("argument '") + name + "' must be 1-D, got " +
                           std::to_string(a.ndim()) + " dimensions")
                              .c_str());
  }
  if (a.shape(0) > 1 && a.stride(0) != 1) {
    throw nb::value_error(
        (std::string("argument '") + name + "' must be C-contiguous (use numpy.ascontiguousarray)")
            .c_str());
  }
  return {static_cast<const T*>(a.data()), a.shape(0)};
}

/// A 1-D numpy array that owns its memory.
template <typename T>
using Out1D = nb::ndarray<nb::numpy, T, nb::shape<-1>>;

/// Move a vector into a numpy array without copying its elements.
template <typename T>
Out1D<T> to_numpy(std::vector<T>&& v) {
  auto* heap = new std::vector<T>(std::move(v));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return Out1D<T>(heap->data(), {heap->size()}, owner);
}

/// Raise ValueError naming the argument when a column's length differs from the first column's.
inline void check_len(const char* name, std::size_t got, std::size_t want) {
  if (got != want) {
    throw nb::value_error((std::string("length mismatch: '") + name + "' has " +
                           std::to_string(got) + " rows, expected " + std::to_string(want))
                              .c_str());
  }
}

}  // namespace tickserver::py
