#include "claimfs/yaml/json_text.h"

#include <gtest/gtest.h>

#include "claimfs/yaml/codec.h"

namespace claimfs::yaml {
namespace {

using json = nlohmann::json;

TEST(JsonTextTest, KeepsTheTextOfNumbersThatParseAsDoubles) {
  NumberTexts numbers;
  auto j = ParseJsonKeepingNumbers(
      R"({"a": 1.50, "b": [7, 1e-999, {"c~/d": 99999999999999999999}], "e": 12})", &numbers);
  ASSERT_TRUE(j.ok()) << j.status().message();
  EXPECT_EQ(
      numbers,
      (NumberTexts{{"/a", "1.50"}, {"/b/1", "1e-999"}, {"/b/2/c~0~1d", "99999999999999999999"}}));
  EXPECT_EQ((*j)["e"], 12);
  EXPECT_EQ((*j)["b"][0], 7);
  EXPECT_EQ(*j, json::parse(R"({"a": 1.50, "b": [7, 1e-999, {"c~/d": 99999999999999999999}],
                                "e": 12})"));
}

// Regression: "storage": 1e999999 made json::parse throw out_of_range, which answered 500.
TEST(JsonTextTest, NumberBeyondADoubleBecomesItsText) {
  NumberTexts numbers;
  auto j = ParseJsonKeepingNumbers(
      R"({"s": "1e999999", "x": [1e999999, "\"", -1E400], "1e999999": {"z": 1e999999}})", &numbers);
  ASSERT_TRUE(j.ok()) << j.status().message();
  EXPECT_EQ(*j, json::parse(R"({"s": "1e999999", "x": ["1e999999", "\"", "-1E400"],
                                "1e999999": {"z": "1e999999"}})"));
  // Only the numbers: a string the sender wrote is not one.
  EXPECT_EQ(numbers,
            (NumberTexts{{"/x/0", "1e999999"}, {"/x/2", "-1E400"}, {"/1e999999/z", "1e999999"}}));
}

TEST(JsonTextTest, NumberBeyondADoubleIsNoString) {
  std::string body = R"({"apiVersion":"v1","kind":"PersistentVolumeClaim",
      "metadata":{"name":"q","labels":{"a":1e999999}}})";
  NumberTexts numbers;
  auto j = ParseJsonKeepingNumbers(body, &numbers);
  ASSERT_TRUE(j.ok()) << j.status().message();
  DecodeReport report;
  EXPECT_FALSE(DecodeObject(*j, &report, &numbers).has_value());
  EXPECT_EQ(JoinErrors(report.errors),
            "metadata.labels[a]: Invalid type: expected string, got number 1e999999");
}

TEST(JsonTextTest, BadJsonFailsWithTheParsersMessage) {
  for (const char* text : {"", "{", R"({"a": 1e})", R"({"a": 01})", R"({"a": -})", "[1e999999",
                           R"({"a": 1e999999 "b": 1})", "1e999999 x", R"({"a": .5})"}) {
    NumberTexts numbers;
    auto j = ParseJsonKeepingNumbers(text, &numbers);
    ASSERT_FALSE(j.ok()) << text << " parsed as " << j->dump();
    EXPECT_EQ(j.status().code(), StatusCode::kInvalid);
    EXPECT_EQ(j.status().message().find("[json.exception"), std::string::npos)
        << j.status().message();
  }
}

TEST(JsonTextTest, ManyNumbersBeyondADoubleAreRefused) {
  std::string text = "[";
  for (int i = 0; i < 100; ++i) text += (i ? "," : "") + std::string("1e999999");
  text += "]";
  NumberTexts numbers;
  auto j = ParseJsonKeepingNumbers(text, &numbers);
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("beyond the range"), std::string::npos);
}

struct NumberQuantityCase {
  const char* storage;  // the JSON number as written
  const char* error;    // "" when it decodes
};

class NumberQuantityTest : public ::testing::TestWithParam<NumberQuantityCase> {};

// A quantity sent as a JSON number is judged by its text, with the field named.
TEST_P(NumberQuantityTest, IsJudgedByItsText) {
  std::string body = R"({"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"q"},
      "spec":{"resources":{"requests":{"storage":)" +
                     std::string(GetParam().storage) + "}}}}";
  NumberTexts numbers;
  auto j = ParseJsonKeepingNumbers(body, &numbers);
  ASSERT_TRUE(j.ok()) << j.status().message();
  DecodeReport report;
  auto object = DecodeObject(*j, &report, &numbers);
  std::string error = GetParam().error;
  if (error.empty()) {
    ASSERT_TRUE(object.has_value()) << JoinErrors(report.errors);
    return;
  }
  ASSERT_EQ(report.errors.size(), 1u) << JoinErrors(report.errors);
  EXPECT_EQ(report.errors[0].ToString(), error);
}

INSTANTIATE_TEST_SUITE_P(
    Table, NumberQuantityTest,
    ::testing::Values(
        NumberQuantityCase{"1e999999",
                           "spec.resources.requests.storage: Invalid value: \"1e999999\": too "
                           "large (the most is 8Ei - 1 bytes)"},
        NumberQuantityCase{"-1e999999",
                           "spec.resources.requests.storage: Invalid value: \"-1e999999\": too "
                           "large (the most is 8Ei - 1 bytes)"},
        NumberQuantityCase{"99999999999999999999",
                           "spec.resources.requests.storage: Invalid value: "
                           "\"99999999999999999999\": too large (the most is 8Ei - 1 bytes)"},
        NumberQuantityCase{"9223372036854775808",
                           "spec.resources.requests.storage: Invalid value: "
                           "\"9223372036854775808\": too large (the most is 8Ei - 1 bytes)"},
        NumberQuantityCase{"1e-999", ""}, NumberQuantityCase{"1.5", ""},
        NumberQuantityCase{"1e9", ""}, NumberQuantityCase{"9223372036854775807", ""}));

}  // namespace
}  // namespace claimfs::yaml
