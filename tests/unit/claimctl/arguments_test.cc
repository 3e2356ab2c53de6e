// Argument handling: kubectl's -o=FORMAT, resource type/name forms, label selectors, jsonpath and wait conditions.
#include <gtest/gtest.h>

#include "claimctl/command_line.h"
#include "claimctl/commands.h"
#include "claimctl/jsonpath.h"
#include "claimctl/label_selector.h"
#include "claimctl/resources.h"
#include "claimfs/model/selector.h"

namespace claimfs::claimctl {
namespace {

using nlohmann::json;

TEST(SplitShortOptionValuesTest, KubectlEqualsFormOfShortOptions) {
  using Args = std::vector<std::string>;
  EXPECT_EQ(SplitShortOptionValues({"get", "pvc", "-n=team", "-o=jsonpath={.items[0].spec}"}),
            (Args{"get", "pvc", "-n", "team", "-o", "jsonpath={.items[0].spec}"}));
  EXPECT_EQ(SplitShortOptionValues({"apply", "-f=x.yaml", "-l=app=db"}),
            (Args{"apply", "-f", "x.yaml", "-l", "app=db"}));
  EXPECT_EQ(SplitShortOptionValues({"patch", "pvc", "d", "-p={\"a\":1}"}),
            (Args{"patch", "pvc", "d", "-p", "{\"a\":1}"}));
  // Unchanged: other options, long options, values, and everything after "--".
  Args kept = {"get", "-A", "--namespace=team", "-x=1", "-n", "=odd", "--", "sh", "-o=x"};
  EXPECT_EQ(SplitShortOptionValues(kept), kept);
  EXPECT_EQ(SplitShortOptionValues({"-n="}), (Args{"-n", ""}));
}

TEST(ParseKindTest, KubectlNames) {
  for (const char* name : {"pv", "PV", "persistentvolume", "persistentvolumes"}) {
    EXPECT_EQ(ParseKind(name), Kind::kPersistentVolume) << name;
  }
  for (const char* name : {"pvc", "persistentvolumeclaim", "PersistentVolumeClaims"}) {
    EXPECT_EQ(ParseKind(name), Kind::kPersistentVolumeClaim) << name;
  }
  for (const char* name : {"sc", "storageclass", "storageclasses", "storageclasses.storage.k8s.io",
                           "storageclass.storage.k8s.io"}) {
    EXPECT_EQ(ParseKind(name), Kind::kStorageClass) << name;
  }
  EXPECT_FALSE(ParseKind("pods"));
  EXPECT_FALSE(ParseKind(""));
}

TEST(ParseResourceArgsTest, TypeThenNames) {
  auto r = ParseResourceArgs({"pvc", "data", "logs"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kinds, std::vector<Kind>{Kind::kPersistentVolumeClaim});
  EXPECT_EQ(r->objects, (std::vector<ObjectRef>{{Kind::kPersistentVolumeClaim, "data"},
                                                {Kind::kPersistentVolumeClaim, "logs"}}));
}

TEST(ParseResourceArgsTest, CommaTypesAndAll) {
  auto r = ParseResourceArgs({"pv,pvc"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kinds, (std::vector<Kind>{Kind::kPersistentVolume, Kind::kPersistentVolumeClaim}));
  EXPECT_TRUE(r->objects.empty());
  auto all = ParseResourceArgs({"all"});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->kinds, (std::vector<Kind>{Kind::kPersistentVolume, Kind::kPersistentVolumeClaim,
                                           Kind::kStorageClass}));
  auto dup = ParseResourceArgs({"pvc,persistentvolumeclaims,all"});
  ASSERT_TRUE(dup.ok());
  EXPECT_EQ(dup->kinds.size(), 3u);
}

TEST(ParseResourceArgsTest, SlashForm) {
  auto r = ParseResourceArgs({"pvc/data", "pv/pv-1", "pvc/logs"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kinds, (std::vector<Kind>{Kind::kPersistentVolumeClaim, Kind::kPersistentVolume}));
  EXPECT_EQ(r->objects, (std::vector<ObjectRef>{{Kind::kPersistentVolumeClaim, "data"},
                                                {Kind::kPersistentVolume, "pv-1"},
                                                {Kind::kPersistentVolumeClaim, "logs"}}));
}

TEST(ParseResourceArgsTest, Errors) {
  auto unknown = ParseResourceArgs({"pods"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().message(), "the server doesn't have a resource type \"pods\"");
  EXPECT_FALSE(ParseResourceArgs({"pvc/data", "logs"}).ok());
  EXPECT_FALSE(ParseResourceArgs({"pvc", "pvc/data"}).ok());
  EXPECT_FALSE(ParseResourceArgs({"pvc/"}).ok());
  EXPECT_FALSE(ParseResourceArgs({"nope/x"}).ok());
  EXPECT_FALSE(ParseResourceArgs({}).ok());
}

TEST(PathsTest, ApiPaths) {
  EXPECT_EQ(CollectionPath(Kind::kPersistentVolume, "default"), "/api/v1/persistentvolumes");
  EXPECT_EQ(CollectionPath(Kind::kPersistentVolumeClaim, ""), "/api/v1/persistentvolumeclaims");
  EXPECT_EQ(ObjectPath(Kind::kPersistentVolumeClaim, "team-a", "data"),
            "/api/v1/namespaces/team-a/persistentvolumeclaims/data");
  EXPECT_EQ(ObjectPath(Kind::kStorageClass, "default", "local"),
            "/apis/storage.k8s.io/v1/storageclasses/local");
  EXPECT_EQ(ObjectPath(Kind::kPersistentVolume, "ignored", "a b/c"),
            "/api/v1/persistentvolumes/a%20b%2Fc");
  EXPECT_EQ(ResourceName(Kind::kStorageClass, "local"), "storageclass.storage.k8s.io/local");
  EXPECT_EQ(ResourceName(Kind::kPersistentVolumeClaim, "data"), "persistentvolumeclaim/data");
}

TEST(LabelSelectorTest, ParsesKubectlSyntax) {
  auto s = ParseLabelSelector("app=db, tier!=cache,env in (a, b),!legacy,owner,x==y");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->match_labels, (std::map<std::string, std::string>{{"app", "db"}, {"x", "y"}}));
  ASSERT_EQ(s->match_expressions.size(), 4u);
  EXPECT_TRUE(model::Matches(*s, {{"app", "db"}, {"x", "y"}, {"env", "a"}, {"owner", "me"}}));
  EXPECT_FALSE(model::Matches(*s, {{"app", "db"}, {"x", "y"}, {"env", "c"}, {"owner", "me"}}));
  EXPECT_FALSE(model::Matches(
      *s, {{"app", "db"}, {"x", "y"}, {"env", "a"}, {"owner", "me"}, {"tier", "cache"}}));
  EXPECT_FALSE(model::Matches(
      *s, {{"app", "db"}, {"x", "y"}, {"env", "a"}, {"owner", "me"}, {"legacy", "1"}}));
  EXPECT_FALSE(model::Matches(*s, {{"app", "db"}, {"x", "y"}, {"env", "a"}}));
  auto location = ParseLabelSelector("location=local");
  ASSERT_TRUE(location.ok());
  EXPECT_TRUE(model::Matches(*location, {{"location", "local"}}));
  EXPECT_TRUE(ParseLabelSelector("").ok());
}

TEST(LabelSelectorTest, Errors) {
  for (const char* bad : {"a=b=c", "=x", "a in ()", "a foo (x)", "a!x", "a,,b", "(x)"}) {
    EXPECT_FALSE(ParseLabelSelector(bad).ok()) << bad;
  }
}

TEST(JsonPathTest, Evaluates) {
  json pvc = json::parse(R"({"status":{"phase":"Bound","capacity":{"storage":"1Gi"}},
      "spec":{"accessModes":["ReadWriteOnce","ReadOnlyMany"]},
      "metadata":{"annotations":{"pv.kubernetes.io/bind-completed":"yes"},"generation":3}})");
  auto text = [&](const char* expr) -> std::string {
    auto r = EvaluateJsonPath(expr, pvc);
    if (!r.ok()) return "error: " + r.status().message();
    if (!r->has_value()) return "<missing>";
    return JsonPathText(**r);
  };
  EXPECT_EQ(text("{.status.phase}"), "Bound");
  EXPECT_EQ(text(".status.phase"), "Bound");
  EXPECT_EQ(text("{.status.capacity.storage}"), "1Gi");
  EXPECT_EQ(text("{.spec.accessModes[0]}"), "ReadWriteOnce");
  EXPECT_EQ(text("{.spec.accessModes[1]}"), "ReadOnlyMany");
  EXPECT_EQ(text("{.spec.accessModes[-1]}"), "ReadOnlyMany");
  EXPECT_EQ(text("{.spec.accessModes[2]}"), "<missing>");
  EXPECT_EQ(text("{.metadata.annotations['pv.kubernetes.io/bind-completed']}"), "yes");
  EXPECT_EQ(text("{.metadata.annotations.pv\\.kubernetes\\.io/bind-completed}"), "yes");
  EXPECT_EQ(text("{.metadata.generation}"), "3");
  EXPECT_EQ(text("{.status.capacity}"), R"({"storage":"1Gi"})");
  EXPECT_EQ(text("{.status.nope}"), "<missing>");
  EXPECT_EQ(text("{.status.phase.deeper}"), "<missing>");
  EXPECT_EQ(text("{.spec[0]}"), "<missing>");
  EXPECT_EQ(text("{.}").substr(0, 1), "{");
  for (const char* bad :
       {"{status.phase}", "{.a[?(@.b)]}", "{.a..b}", "{.a", "{.a[x]}", "{.a*}", ""}) {
    EXPECT_EQ(text(bad).substr(0, 6), "error:") << bad;
  }
}

// kubectl's most common script form, {.items[*].metadata.name}, was refused.
TEST(JsonPathTest, WildcardsYieldEveryValue) {
  json list = json::parse(R"({"items":[
      {"metadata":{"name":"a","labels":{"x":"1","y":"2"}},"spec":{"accessModes":["ReadWriteOnce"]}},
      {"metadata":{"name":"b"},"spec":{"accessModes":["ReadOnlyMany","ReadWriteMany"]}}]})");
  auto all = [&](const char* expr) {
    std::vector<std::string> out;
    auto r = EvaluateJsonPathAll(expr, list);
    if (!r.ok()) return std::vector<std::string>{"error: " + r.status().message()};
    for (const json& v : *r) out.push_back(JsonPathText(v));
    return out;
  };
  using Texts = std::vector<std::string>;
  EXPECT_EQ(all("{.items[*].metadata.name}"), (Texts{"a", "b"}));
  EXPECT_EQ(all("{.items[*].spec.accessModes[*]}"),
            (Texts{"ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany"}));
  EXPECT_EQ(all("{.items[0].metadata.labels.*}"), (Texts{"1", "2"}));
  EXPECT_EQ(all("{.items[*].metadata.labels.x}"), (Texts{"1"}));  // b has none: skipped
  EXPECT_EQ(all("{.items[*].nope}"), Texts{});
  EXPECT_EQ(all("{.items[1].metadata.name}"), (Texts{"b"}));
  auto first = EvaluateJsonPath("{.items[*].metadata.name}", list);
  ASSERT_TRUE(first.ok() && first->has_value());
  EXPECT_EQ(JsonPathText(**first), "a");
}

TEST(WaitConditionTest, Parses) {
  auto jp = ParseWaitCondition("jsonpath={.status.phase}=Bound");
  ASSERT_TRUE(jp.ok()) << jp.status().ToString();
  EXPECT_EQ(jp->type, WaitCondition::Type::kJsonPath);
  EXPECT_EQ(jp->expression, "{.status.phase}");
  EXPECT_EQ(jp->value, "Bound");

  auto exists = ParseWaitCondition("jsonpath={.spec.volumeName}");
  ASSERT_TRUE(exists.ok());
  EXPECT_FALSE(exists->value);

  auto with_eq = ParseWaitCondition("jsonpath={.metadata.annotations['a=b']}=c=d");
  ASSERT_TRUE(with_eq.ok());
  EXPECT_EQ(with_eq->expression, "{.metadata.annotations['a=b']}");
  EXPECT_EQ(with_eq->value, "c=d");

  auto del = ParseWaitCondition("delete");
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->type, WaitCondition::Type::kDelete);

  auto cond = ParseWaitCondition("condition=Resizing");
  ASSERT_TRUE(cond.ok());
  EXPECT_EQ(cond->type, WaitCondition::Type::kCondition);
  EXPECT_EQ(cond->expression, "Resizing");
  EXPECT_EQ(cond->value, "True");
  auto cond_false = ParseWaitCondition("condition=Resizing=false");
  ASSERT_TRUE(cond_false.ok());
  EXPECT_EQ(cond_false->value, "false");

  for (const char* bad :
       {"", "ready", "jsonpath=", "jsonpath={.a[*]}=x", "condition=", "jsonpath={.a}x"}) {
    EXPECT_FALSE(ParseWaitCondition(bad).ok()) << bad;
  }
}

TEST(WaitConditionTest, Evaluates) {
  json pvc = json::parse(R"({"status":{"phase":"Pending","conditions":[
      {"type":"Resizing","status":"True"}]}})");
  auto met = [&](const char* text) {
    auto c = ParseWaitCondition(text);
    EXPECT_TRUE(c.ok()) << text;
    auto r = ConditionMet(*c, pvc);
    EXPECT_TRUE(r.ok()) << text;
    return *r;
  };
  EXPECT_FALSE(met("jsonpath={.status.phase}=Bound"));
  EXPECT_TRUE(met("jsonpath={.status.phase}=Pending"));
  EXPECT_TRUE(met("jsonpath={.status.phase}"));
  EXPECT_FALSE(met("jsonpath={.spec.volumeName}"));
  EXPECT_TRUE(met("condition=Resizing"));
  EXPECT_TRUE(met("condition=resizing=true"));
  EXPECT_FALSE(met("condition=Resizing=False"));
  EXPECT_FALSE(met("condition=FileSystemResizePending"));
}

}  // namespace
}  // namespace claimfs::claimctl
