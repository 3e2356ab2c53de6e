// kubectl's ages (apimachinery HumanDuration), RFC 3339 parsing and --timeout durations.
#include "claimctl/duration.h"

#include <gtest/gtest.h>

namespace claimfs::claimctl {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;

struct DurationCase {
  nanoseconds d;
  const char* want;
};

TEST(HumanDurationTest, MatchesApimachineryTable) {
  const hours day(24);
  const DurationCase cases[] = {
      {seconds(-2), "<invalid>"},
      {milliseconds(-1500), "0s"},  // int(-1.5) == -1: within the 2s tolerance
      {seconds(-1), "0s"},
      {seconds(0), "0s"},
      {milliseconds(999), "0s"},
      {seconds(1), "1s"},
      {seconds(119), "119s"},
      {seconds(120), "2m"},
      {seconds(123), "2m3s"},
      {minutes(9) + seconds(59), "9m59s"},
      {minutes(10), "10m"},
      {minutes(10) + seconds(59), "10m"},
      {minutes(179), "179m"},
      {hours(3), "3h"},
      {hours(3) + minutes(20), "3h20m"},
      {hours(7) + minutes(59), "7h59m"},
      {hours(8), "8h"},
      {hours(8) + minutes(59), "8h"},
      {hours(47), "47h"},
      {hours(48), "2d"},
      {hours(49), "2d1h"},
      {day * 8 - hours(1), "7d23h"},
      {day * 8, "8d"},
      {day * 365 * 2 - day, "729d"},
      {day * 365 * 2, "2y"},
      {day * 365 * 2 + day * 45, "2y45d"},
      {day * 365 * 8 - day, "7y364d"},
      {day * 365 * 8, "8y"},
      {day * 365 * 9 + day * 100, "9y"},
  };
  for (const DurationCase& c : cases) {
    EXPECT_EQ(HumanDuration(c.d), c.want) << c.d.count() << "ns";
  }
}

TEST(TimestampTest, ParsesRfc3339) {
  auto t = ParseTimestamp("2026-11-25T10:00:00Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(Clock::to_time_t(*t), 1795600800);
  auto offset = ParseTimestamp("2026-11-25T12:00:00+02:00");
  ASSERT_TRUE(offset);
  EXPECT_EQ(*offset, *t);
  auto fraction = ParseTimestamp("2026-11-25T10:00:00.5Z");
  ASSERT_TRUE(fraction);
  EXPECT_EQ(*fraction - *t, milliseconds(500));
  for (const char* bad : {"", "2026-11-25", "2026-11-25T10:00:00", "2026-13-01T00:00:00Z",
                          "2026-02-30T00:00:00Z", "2026-11-25T10:00:00Zjunk", "yesterday"}) {
    EXPECT_FALSE(ParseTimestamp(bad)) << bad;
  }
}

TEST(TimestampTest, AgeIsUnknownWithoutTimestamp) {
  auto now = *ParseTimestamp("2026-11-25T10:00:00Z");
  EXPECT_EQ(Age("", now), "<unknown>");
  EXPECT_EQ(Age("garbage", now), "<unknown>");
  EXPECT_EQ(Age("2026-11-25T09:59:53Z", now), "7s");
  EXPECT_EQ(Age("2026-11-25T09:49:00Z", now), "11m");
  EXPECT_EQ(Age("2026-11-25T10:00:01Z", now), "0s");  // a clock slightly ahead
}

TEST(GoDurationTest, ParsesKubectlTimeouts) {
  struct Case {
    const char* text;
    nanoseconds want;
  } cases[] = {
      {"0", seconds(0)},
      {"0s", seconds(0)},
      {"30s", seconds(30)},
      {"5m", minutes(5)},
      {"1h30m", minutes(90)},
      {"1.5h", minutes(90)},
      {"300ms", milliseconds(300)},
      {"1m30s", seconds(90)},
      {"45", seconds(45)},
      {"-1s", seconds(-1)},
      {"2h3m4s", hours(2) + minutes(3) + seconds(4)},
  };
  for (const Case& c : cases) {
    auto d = ParseGoDuration(c.text);
    ASSERT_TRUE(d.ok()) << c.text << ": " << d.status().ToString();
    EXPECT_EQ(*d, c.want) << c.text;
  }
  for (const char* bad : {"", "s", "10x", "1d", "abc", "-", "1.2.3s"}) {
    auto d = ParseGoDuration(bad);
    EXPECT_FALSE(d.ok()) << bad;
    if (!d.ok()) {
      EXPECT_EQ(d.status().code(), StatusCode::kInvalid);
    }
  }
}

}  // namespace
}  // namespace claimfs::claimctl
