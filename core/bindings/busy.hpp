// Guard for objects whose batch calls release the GIL: a second caller gets a RuntimeError
// instead of racing (every read and write of the flag happens with the GIL held).
#pragma once

#include <stdexcept>
#include <string>

namespace tickserver::py {

/// Raise RuntimeError if `busy` is set (another thread is inside a GIL-released call).
inline void check_idle(bool busy, const char* what) {
  if (busy) {
    throw std::runtime_error(std::string(what) +
                             " is in use by a batch call in another thread; calls must not overlap");
  }
}

/// Sets `busy` for its lifetime. Construct before releasing the GIL and let it be destroyed after
/// the GIL is re-acquired.
class BusyGuard {
 public:
  BusyGuard(bool& busy, const char* what) : busy_(busy) {
    check_idle(busy, what);
    busy_ = true;
  }
  ~BusyGuard() { busy_ = false; }
  BusyGuard(const BusyGuard&) = delete;
  BusyGuard& operator=(const BusyGuard&) = delete;

 private:
  bool& busy_;
};

}  // namespace tickserver::py
