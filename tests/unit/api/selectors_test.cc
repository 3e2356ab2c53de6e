// Label and field selectors from query strings.
#include "api/selectors.h"

#include <gtest/gtest.h>

#include "api/metrics.h"
#include "claimfs/model/selector.h"

namespace claimfs::api::internal {
namespace {

using Labels = std::map<std::string, std::string>;

TEST(LabelSelectorTest, MatchesAsKubernetes) {
  struct Case {
    const char* selector;
    Labels labels;
    bool matches;
  };
  const Case cases[] = {
      {"", {}, true},
      {"app=web", {{"app", "web"}}, true},
      {"app==web", {{"app", "web"}}, true},
      {"app=web", {{"app", "db"}}, false},
      {"app!=web", {{"app", "db"}}, true},
      {"app!=web", {}, true},
      {"app", {{"app", ""}}, true},
      {"app", {}, false},
      {"!app", {}, true},
      {"!app", {{"app", "x"}}, false},
      {"env in (prod, staging)", {{"env", "staging"}}, true},
      {"env in (prod,staging)", {{"env", "dev"}}, false},
      {"env notin (prod)", {{"env", "dev"}}, true},
      {"env notin (prod)", {}, true},
      {"app=web, env in (a,b), !legacy", {{"app", "web"}, {"env", "b"}}, true},
      {"app=web,app=db", {{"app", "web"}}, false},
      {"example.com/tier=fast", {{"example.com/tier", "fast"}}, true},
  };
  for (const Case& c : cases) {
    auto selector = ParseLabelSelector(c.selector);
    ASSERT_TRUE(selector.ok()) << c.selector << ": " << selector.status().ToString();
    EXPECT_EQ(model::Matches(*selector, c.labels), c.matches) << c.selector;
  }
}

TEST(LabelSelectorTest, RefusesWhatDoesNotParse) {
  for (const char* bad :
       {"=x", "a=b,", "app in prod", "app in (a", "a=b c", "a>1", "!a=b", "a=(b)"}) {
    auto selector = ParseLabelSelector(bad);
    EXPECT_FALSE(selector.ok()) << bad;
    if (!selector.ok()) {
      EXPECT_EQ(selector.status().code(), StatusCode::kInvalid);
      EXPECT_NE(selector.status().message().find("unable to parse requirement"), std::string::npos);
    }
  }
}

TEST(FieldSelectorTest, ParsesEqualityAndInequality) {
  auto parsed = ParseFieldSelector(
      "involvedObject.kind=PersistentVolume,involvedObject.name==a\\,b,type!=Normal,"
      "involvedObject.namespace=");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->size(), 4u);
  EXPECT_EQ((*parsed)[0].field, "involvedObject.kind");
  EXPECT_EQ((*parsed)[0].value, "PersistentVolume");
  EXPECT_EQ((*parsed)[1].value, "a,b");
  EXPECT_FALSE((*parsed)[2].equals);
  EXPECT_EQ((*parsed)[3].value, "");
  EXPECT_TRUE(MatchesFields(*parsed, {{"involvedObject.kind", "PersistentVolume"},
                                      {"involvedObject.name", "a,b"},
                                      {"type", "Warning"}}));
  EXPECT_FALSE(MatchesFields(*parsed, {{"involvedObject.kind", "PersistentVolume"},
                                       {"involvedObject.name", "a,b"},
                                       {"type", "Normal"}}));
  EXPECT_FALSE(ParseFieldSelector("justaword").ok());
  EXPECT_FALSE(ParseFieldSelector("=value").ok());
  EXPECT_TRUE(ParseFieldSelector("")->empty());
}

TEST(MetricsTest, EscapesLabelValues) {
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(MetricsTest, RequestCounterFoldsUnknownMethods) {
  RequestCounter counter;
  counter.Add("GET", 200);
  counter.Add("GET", 200);
  counter.Add("BREW", 405);
  auto counts = counter.Counts();
  EXPECT_EQ((counts[{"GET", 200}]), 2u);
  EXPECT_EQ((counts[{"OTHER", 405}]), 1u);
  EXPECT_EQ(counts.size(), 2u);
}

}  // namespace
}  // namespace claimfs::api::internal
