// The path algebra every path check and every syscall shares: bytes, normal form, containment.
#include "claimfs/model/host_path.h"

#include <gtest/gtest.h>

#include <string>

namespace claimfs::model {
namespace {

using namespace std::string_literals;

struct ProblemCase {
  std::string path;     // may hold NUL
  std::string problem;  // "" when the path is fine
};

void PrintTo(const ProblemCase& c, std::ostream* os) { *os << ::testing::PrintToString(c.path); }

class HostPathProblemTest : public ::testing::TestWithParam<ProblemCase> {};

TEST_P(HostPathProblemTest, NamesTheBadByteAndItsOffset) {
  const ProblemCase& c = GetParam();
  auto problem = HostPathProblem(c.path);
  EXPECT_EQ(problem.value_or(""), c.problem);
  EXPECT_EQ(HostPath::Parse(c.path).ok(), c.problem.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Table, HostPathProblemTest,
    ::testing::Values(
        ProblemCase{"/var/lib/claimfs/pools/default", ""},
        ProblemCase{"/var/lib/claimfs/pools/default\0"s, "must not contain NUL (byte 30)"},
        ProblemCase{"/var/lib/claimfs/state\0x"s, "must not contain NUL (byte 22)"},
        ProblemCase{"/tmp/\0x"s, "must not contain NUL (byte 5)"},
        ProblemCase{"\0/tmp"s, "must not contain NUL (byte 0)"},
        ProblemCase{"/tmp/a\tb", "must not contain the control character 0x09 (byte 6)"},
        ProblemCase{"/tmp/a\nb", "must not contain the control character 0x0a (byte 6)"},
        ProblemCase{"/tmp/\x01", "must not contain the control character 0x01 (byte 5)"},
        ProblemCase{"/tmp/\x1f", "must not contain the control character 0x1f (byte 5)"},
        ProblemCase{"/tmp/\x7f", "must not contain the control character 0x7f (byte 5)"},
        ProblemCase{"/tmp/\xff", "must be valid UTF-8: 0xff does not start a character (byte 5)"},
        ProblemCase{"/tmp/\xc0\xaf",  // overlong '/'
                    "must be valid UTF-8: 0xc0 does not start a character (byte 5)"},
        ProblemCase{"/tmp/\xe0\x80\xaf",  // overlong '/', three bytes
                    "must be valid UTF-8: 0xe0 does not start a character (byte 5)"},
        ProblemCase{"/tmp/\xed\xa0\x80",  // a surrogate
                    "must be valid UTF-8: 0xed does not start a character (byte 5)"},
        ProblemCase{"/tmp/\xc3", "must be valid UTF-8: 0xc3 does not start a character (byte 5)"},
        ProblemCase{"/tmp/\x80", "must be valid UTF-8: 0x80 does not start a character (byte 5)"},
        ProblemCase{"/tmp/caf\xc3\xa9/\xe6\x97\xa5\xf0\x9f\x98\x80", ""},  // UTF-8 is fine
        ProblemCase{"/tmp/with space", ""}, ProblemCase{"/tmp/%00", ""},
        ProblemCase{"", "must not be empty"}, ProblemCase{"tmp/x", "must be an absolute path"},
        ProblemCase{"~/x", "must be an absolute path"}, ProblemCase{"./x", "must be an absolute path"},
        ProblemCase{"/tmp/../etc", "must not contain '..'"},
        ProblemCase{"/tmp/./k8s/../..", "must not contain '..'"},
        ProblemCase{"/..", "must not contain '..'"}, ProblemCase{"/tmp/..x", ""},
        ProblemCase{"/", ""}, ProblemCase{"//tmp//x/./", ""},
        ProblemCase{"/" + std::string(255, 'n'), ""},
        ProblemCase{"/" + std::string(256, 'n'),
                    "must not have a component longer than 255 bytes (NAME_MAX), has one of 256"},
        ProblemCase{std::string(4095, '/'), ""},
        ProblemCase{std::string(4096, '/'),
                    "must be at most 4095 bytes (PATH_MAX), has 4096"}));

struct NormalCase {
  std::string path;
  std::string normal;
};

class HostPathNormalTest : public ::testing::TestWithParam<NormalCase> {};

TEST_P(HostPathNormalTest, CollapsesSlashesDotsAndTrailingSlash) {
  auto p = HostPath::Parse(GetParam().path);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->string(), GetParam().normal);
}

INSTANTIATE_TEST_SUITE_P(Table, HostPathNormalTest,
                         ::testing::Values(NormalCase{"/", "/"}, NormalCase{"//", "/"},
                                           NormalCase{"/./", "/"}, NormalCase{"/tmp", "/tmp"},
                                           NormalCase{"/tmp/", "/tmp"},
                                           NormalCase{"//tmp//k8s-pv", "/tmp/k8s-pv"},
                                           NormalCase{"/tmp/./k8s-pv/.", "/tmp/k8s-pv"},
                                           NormalCase{"///net/share", "/net/share"},
                                           NormalCase{"//net/share", "/net/share"},
                                           NormalCase{"/a/.b/..c/", "/a/.b/..c"}));

TEST(HostPathTest, ComponentsAreTheNamesBelowRoot) {
  EXPECT_EQ(HostPath::Parse("//a/./b/")->Components(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(HostPath::Parse("/")->Components().empty());
}

struct RelationCase {
  std::string a;
  std::string b;
  bool strictly_below;  // a below b
  bool at_or_below;
  bool overlaps;
};

void PrintTo(const RelationCase& c, std::ostream* os) { *os << c.a << " vs " << c.b; }

class HostPathRelationTest : public ::testing::TestWithParam<RelationCase> {};

TEST_P(HostPathRelationTest, ComparesWholeComponents) {
  const RelationCase& c = GetParam();
  auto a = HostPath::Parse(c.a);
  auto b = HostPath::Parse(c.b);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->IsStrictlyBelow(*b), c.strictly_below);
  EXPECT_EQ(a->IsAtOrBelow(*b), c.at_or_below);
  EXPECT_EQ(a->Overlaps(*b), c.overlaps);
  EXPECT_EQ(b->Overlaps(*a), c.overlaps);
}

INSTANTIATE_TEST_SUITE_P(
    Table, HostPathRelationTest,
    ::testing::Values(RelationCase{"/tmp/a", "/tmp", true, true, true},
                      RelationCase{"/tmp/a/b", "/tmp/a/", true, true, true},
                      RelationCase{"/tmp/a", "/tmp/a", false, true, true},
                      RelationCase{"/tmp/a/", "//tmp/./a", false, true, true},
                      RelationCase{"/tmp", "/tmp/a", false, false, true},
                      RelationCase{"/tmp/ab", "/tmp/a", false, false, false},
                      RelationCase{"/tmp/a", "/tmp/ab", false, false, false},
                      RelationCase{"/tmpx/a", "/tmp", false, false, false},
                      RelationCase{"/tmp/a", "/tmp/b", false, false, false},
                      RelationCase{"/x", "/", true, true, true},
                      RelationCase{"/", "/", false, true, true},
                      RelationCase{"/var/lib/claimfs/pools/default/pvc-1",
                                   "/var/lib/claimfs/pools/default", true, true, true},
                      RelationCase{"/var/lib/claimfs", "/var/lib/claimfs/pools/default", false,
                                   false, true}));

struct LexicalCase {
  std::string path;
  std::string normal;
};

class LexicallyNormalTest : public ::testing::TestWithParam<LexicalCase> {};

TEST_P(LexicallyNormalTest, ResolvesDotDotForConfigPaths) {
  EXPECT_EQ(LexicallyNormal(GetParam().path), GetParam().normal);
}

INSTANTIATE_TEST_SUITE_P(Table, LexicallyNormalTest,
                         ::testing::Values(LexicalCase{"/mnt//x/./y/../z/", "/mnt/x/z"},
                                           LexicalCase{"/..", "/"}, LexicalCase{"/a/../..", "/"},
                                           LexicalCase{"relative/../x", "relative/../x"},
                                           LexicalCase{"", ""}, LexicalCase{"//a", "/a"},
                                           LexicalCase{"/a\0b/"s, "/a\0b"s}));

TEST(EscapePathForMessageTest, EscapesControlAndNonUtf8Bytes) {
  EXPECT_EQ(EscapePathForMessage("/tmp/\0x\t\xff/caf\xc3\xa9"s), "/tmp/\\x00x\\x09\\xff/caf\xc3\xa9");
}

}  // namespace
}  // namespace claimfs::model
