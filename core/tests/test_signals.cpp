#include <doctest/doctest.h>

#include <cmath>

#include "tickserver/signals.hpp"

using namespace tickserver;

namespace {
const double kNan = std::nan("");
}

TEST_CASE("crossover_fires_only_on_observed_crossings") {
  rules::State s{};
  CHECK(rules::crossover(kNan, 1.0, s) == 0);  // warm-up: state untouched
  CHECK(s == rules::State{});
  CHECK(rules::crossover(2.0, 1.0, s) == 0);  // first observation: above, no firing
  CHECK(rules::crossover(3.0, 1.0, s) == 0);
  CHECK(rules::crossover(0.5, 1.0, s) == -1);
  CHECK(rules::crossover(1.0, 1.0, s) == 0);  // touching keeps the side
  CHECK(rules::crossover(0.9, 1.0, s) == 0);  // back below without having crossed
  CHECK(rules::crossover(1.1, 1.0, s) == 1);
}

TEST_CASE("threshold_fires_minus_one_crossing_above_and_plus_one_crossing_below") {
  rules::State s{};
  CHECK(rules::threshold(50, 70, 30, s) == 0);
  CHECK(rules::threshold(71, 70, 30, s) == -1);
  CHECK(rules::threshold(75, 70, 30, s) == 0);  // staying above does not refire
  CHECK(rules::threshold(50, 70, 30, s) == 0);
  CHECK(rules::threshold(29, 70, 30, s) == 1);
  CHECK(rules::threshold(kNan, 70, 30, s) == 0);
  CHECK(rules::threshold(28, 70, 30, s) == 0);
}

TEST_CASE("threshold_does_not_fire_on_its_first_observation") {
  rules::State s{};
  CHECK(rules::threshold(80, 70, kNan, s) == 0);
  CHECK(rules::threshold(60, 70, kNan, s) == 0);
  CHECK(rules::threshold(71, 70, kNan, s) == -1);
}

TEST_CASE("breakout_fires_when_close_leaves_the_bands") {
  rules::State s{};
  CHECK(rules::breakout(10, kNan, kNan, s) == 0);
  CHECK(rules::breakout(10, 11, 9, s) == 0);
  CHECK(rules::breakout(11.5, 11, 9, s) == 1);
  CHECK(rules::breakout(11.6, 11, 9, s) == 0);
  CHECK(rules::breakout(8, 11, 9, s) == -1);
  CHECK(rules::breakout(10, 11, 9, s) == 0);
  CHECK(rules::breakout(12, 11, 9, s) == 1);
}

TEST_CASE("breakout_does_not_fire_when_first_seen_outside") {
  rules::State s{};
  CHECK(rules::breakout(12, 11, 9, s) == 0);
  CHECK(rules::breakout(10, 11, 9, s) == 0);
  CHECK(rules::breakout(8, 11, 9, s) == -1);
}
