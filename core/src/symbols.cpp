#include "tickserver/symbols.hpp"

#include <limits>
#include <stdexcept>

namespace tickserver {

SymbolId SymbolRegistry::intern(std::string_view name) {
  if (name.empty()) {
    throw std::invalid_argument("symbol name must not be empty");
  }
  if (auto it = ids_.find(name); it != ids_.end()) {
    return it->second;
  }
  if (names_.size() >= std::numeric_limits<SymbolId>::max()) {
    throw std::length_error("symbol registry is full");
  }
  const auto id = static_cast<SymbolId>(names_.size());
  names_.emplace_back(name);
  ids_.emplace(names_.back(), id);
  return id;
}

std::optional<SymbolId> SymbolRegistry::lookup(std::string_view name) const {
  if (auto it = ids_.find(name); it != ids_.end()) {
    return it->second;
  }
  return std::nullopt;
}

const std::string& SymbolRegistry::name(SymbolId id) const {
  if (id >= names_.size()) {
    throw std::out_of_range("unknown symbol id " + std::to_string(id));
  }
  return names_[id];
}

}  // namespace tickserver
