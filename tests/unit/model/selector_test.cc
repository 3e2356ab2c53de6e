#include "claimfs/model/selector.h"

#include <gtest/gtest.h>

#include <ostream>

namespace claimfs::model {
namespace {

using Op = LabelSelectorRequirement::Operator;
using Labels = std::map<std::string, std::string>;

LabelSelector Expr(std::string key, Op op, std::vector<std::string> values = {}) {
  LabelSelector s;
  s.match_expressions.push_back({std::move(key), op, std::move(values)});
  return s;
}

struct Case {
  const char* name;
  LabelSelector selector;
  Labels labels;
  bool matches;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class SelectorTest : public ::testing::TestWithParam<Case> {};

TEST_P(SelectorTest, MatchesAsKubernetes) {
  const Case& c = GetParam();
  EXPECT_EQ(Matches(c.selector, c.labels), c.matches) << c.name;
}

LabelSelector Labelled(Labels l) {
  LabelSelector s;
  s.match_labels = std::move(l);
  return s;
}

INSTANTIATE_TEST_SUITE_P(
    Table, SelectorTest,
    ::testing::Values(
        Case{"empty selector, no labels", {}, {}, true},
        Case{"empty selector, any labels", {}, {{"a", "b"}}, true},
        Case{"matchLabels equal", Labelled({{"location", "local"}}), {{"location", "local"}}, true},
        Case{"matchLabels extra labels",
             Labelled({{"location", "local"}}),
             {{"location", "local"}, {"tier", "x"}},
             true},
        Case{"matchLabels other value",
             Labelled({{"location", "local"}}),
             {{"location", "remote"}},
             false},
        Case{"matchLabels key absent", Labelled({{"location", "local"}}), {}, false},
        Case{"matchLabels all must hold", Labelled({{"a", "1"}, {"b", "2"}}), {{"a", "1"}}, false},
        Case{
            "In listed", Expr("stage", Op::kIn, {"development"}), {{"stage", "development"}}, true},
        Case{"In one of several",
             Expr("stage", Op::kIn, {"dev", "test"}),
             {{"stage", "test"}},
             true},
        Case{"In not listed", Expr("stage", Op::kIn, {"development"}), {{"stage", "prod"}}, false},
        Case{"In key absent", Expr("stage", Op::kIn, {"development"}), {}, false},
        Case{"In without values matches nothing", Expr("stage", Op::kIn), {{"stage", ""}}, false},
        Case{"NotIn listed", Expr("stage", Op::kNotIn, {"prod"}), {{"stage", "prod"}}, false},
        Case{"NotIn other value", Expr("stage", Op::kNotIn, {"prod"}), {{"stage", "dev"}}, true},
        Case{"NotIn key absent", Expr("stage", Op::kNotIn, {"prod"}), {}, true},
        Case{"NotIn without values matches nothing", Expr("stage", Op::kNotIn), {}, false},
        Case{"Exists present", Expr("stage", Op::kExists), {{"stage", ""}}, true},
        Case{"Exists absent", Expr("stage", Op::kExists), {{"other", "x"}}, false},
        Case{"Exists with values matches nothing",
             Expr("stage", Op::kExists, {"x"}),
             {{"stage", "x"}},
             false},
        Case{"DoesNotExist absent", Expr("stage", Op::kDoesNotExist), {{"other", "x"}}, true},
        Case{"DoesNotExist present", Expr("stage", Op::kDoesNotExist), {{"stage", "x"}}, false}));

TEST(SelectorTest, LabelsAndExpressionsAreAnded) {
  LabelSelector s = Labelled({{"location", "local"}});
  s.match_expressions.push_back({"stage", Op::kIn, {"development"}});
  EXPECT_TRUE(Matches(s, {{"location", "local"}, {"stage", "development"}}));
  EXPECT_FALSE(Matches(s, {{"location", "local"}, {"stage", "production"}}));
  EXPECT_FALSE(Matches(s, {{"location", "remote"}, {"stage", "development"}}));
}

}  // namespace
}  // namespace claimfs::model
