// Symbol registry: maps symbol strings to dense integer ids (0, 1, 2, ...) and back.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tickserver {

using SymbolId = std::uint32_t;

/// Dense, append-only symbol table. Ids are never reused, so arrays indexed by id stay valid.
class SymbolRegistry {
 public:
  /// Return the id of `name`, adding it if new. Throws std::invalid_argument on an empty name.
  SymbolId intern(std::string_view name);
  [[nodiscard]] std::optional<SymbolId> lookup(std::string_view name) const;
  /// Throws std::out_of_range for an unknown id.
  [[nodiscard]] const std::string& name(SymbolId id) const;
  [[nodiscard]] std::size_t size() const noexcept { return names_.size(); }
  [[nodiscard]] const std::vector<std::string>& names() const noexcept { return names_; }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  std::unordered_map<std::string, SymbolId, Hash, std::equal_to<>> ids_;
  std::vector<std::string> names_;
};

}  // namespace tickserver
