#include "claimfs/common/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace claimfs::log {
namespace {

// What one Info call writes on stderr.
std::string Logged(const std::string& message) {
  Logger();  // made before stderr moves, as in the daemon
  char path[] = "/tmp/claimfs-log-test-XXXXXX";
  int file = mkstemp(path);
  int saved = dup(STDERR_FILENO);
  std::fflush(stderr);
  dup2(file, STDERR_FILENO);
  Info("holder {} restored", message);
  Logger().flush();
  std::fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(file);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  unlink(path);
  return text.str();
}

// Attack L1: a lease holder with a newline forged a second log line.
TEST(LogTest, ControlBytesInAMessageAreEscaped) {
  struct Case {
    std::string in;
    std::string out;
  };
  const Case cases[] = {
      {"plain", "holder plain restored\n"},
      {"x\n\"y deleted", "holder x\\n\"y deleted restored\n"},
      {"a\tb\r", "holder a\\tb\\x0d restored\n"},
      {"esc\x1b[2J", "holder esc\\x1b[2J restored\n"},
      {"back\\slash", "holder back\\\\slash restored\n"},
      {"del\x7f", "holder del\\x7f restored\n"},
      {"caf\xc3\xa9", "holder caf\xc3\xa9 restored\n"},
  };
  for (const Case& c : cases) {
    std::string line = Logged(c.in);
    ASSERT_GE(line.size(), c.out.size()) << line;
    EXPECT_EQ(line.substr(line.size() - c.out.size()), c.out) << line;
    EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
  }
}

}  // namespace
}  // namespace claimfs::log
