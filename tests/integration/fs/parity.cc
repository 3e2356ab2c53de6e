#include "fs/parity.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace claimfs::it {
namespace {

std::string Octal(unsigned v) {
  char buf[16];
  snprintf(buf, sizeof(buf), "0%o", v);
  return buf;
}

std::string Timespec(const timespec& ts) {
  return std::to_string(ts.tv_sec) + "." + std::to_string(ts.tv_nsec);
}

std::string Fail(int err) { return "-1 " + ErrnoName(err); }

uint64_t Fnv1a(std::string_view data) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string Escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace

std::string FormatStat(const struct stat& st, unsigned fields) {
  std::string out;
  auto add = [&out](const std::string& s) {
    if (!out.empty()) out.push_back(' ');
    out += s;
  };
  if (fields & kMode) add("mode=" + Octal(st.st_mode));
  if (fields & kNlink) add("nlink=" + std::to_string(st.st_nlink));
  if (fields & kSize) add("size=" + std::to_string(st.st_size));
  if (fields & kOwner)
    add("uid=" + std::to_string(st.st_uid) + " gid=" + std::to_string(st.st_gid));
  if (fields & kBlocks) add("blocks=" + std::to_string(st.st_blocks));
  if ((fields & kRdev) && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
    add("rdev=" + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev)));
  }
  if (fields & kMtime) add("mtime=" + Timespec(st.st_mtim));
  if (fields & kAtime) add("atime=" + Timespec(st.st_atim));
  return out;
}

std::string Trace::P(std::string_view rel) const {
  if (rel.empty()) return root_;
  return root_ + "/" + std::string(rel);
}

const char* Trace::C(std::string_view rel) {
  scratch_ = P(rel);
  return scratch_.c_str();
}

long Trace::Ret(std::string_view label, long rv) {
  int err = errno;
  lines_.push_back(std::string(label) + " -> " + (rv < 0 ? Fail(err) : std::to_string(rv)));
  errno = err;
  return rv;
}

long Trace::Ok(std::string_view label, long rv) {
  int err = errno;
  lines_.push_back(std::string(label) + " -> " + (rv < 0 ? Fail(err) : "ok"));
  errno = err;
  return rv;
}

void Trace::Stat(std::string_view rel, unsigned fields, bool follow) {
  struct stat st {};
  int rv = follow ? stat(P(rel).c_str(), &st) : lstat(P(rel).c_str(), &st);
  std::string label = std::string(follow ? "stat " : "lstat ") + std::string(rel);
  if (rv != 0) {
    lines_.push_back(label + " -> " + Fail(errno));
  } else {
    lines_.push_back(label + " -> " + FormatStat(st, fields));
  }
}

void Trace::Fstat(std::string_view label, int fd, unsigned fields) {
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    lines_.push_back("fstat " + std::string(label) + " -> " + Fail(errno));
  } else {
    lines_.push_back("fstat " + std::string(label) + " -> " + FormatStat(st, fields));
  }
}

void Trace::Content(std::string_view rel) {
  std::string label = "content " + std::string(rel);
  int fd = open(P(rel).c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    lines_.push_back(label + " -> " + Fail(errno));
    return;
  }
  std::string data;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) data.append(buf, static_cast<size_t>(n));
  int err = errno;
  close(fd);
  if (n < 0) {
    lines_.push_back(label + " -> read " + Fail(err));
    return;
  }
  if (data.size() <= 64) {
    lines_.push_back(label + " -> \"" + Escape(data) + "\"");
  } else {
    char hash[32];
    snprintf(hash, sizeof(hash), "%016llx", static_cast<unsigned long long>(Fnv1a(data)));
    lines_.push_back(label + " -> " + std::to_string(data.size()) + " bytes fnv=" + hash);
  }
}

void Trace::Listing(std::string_view rel) {
  std::string label = "readdir " + std::string(rel);
  DIR* d = opendir(P(rel).c_str());
  if (d == nullptr) {
    lines_.push_back(label + " -> " + Fail(errno));
    return;
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    names.push_back(name + ":" + std::to_string(e->d_type));
  }
  int err = errno;
  closedir(d);
  std::sort(names.begin(), names.end());
  std::string joined;
  for (const std::string& n : names) joined += (joined.empty() ? "" : " ") + n;
  lines_.push_back(label + " -> [" + joined + "]" + (err != 0 ? " " + Fail(err) : ""));
}

void Trace::Note(std::string line) { lines_.push_back(std::move(line)); }

std::string Trace::Serialize() const {
  std::string out;
  for (const std::string& l : lines_) out += l + "\n";
  return out;
}

std::vector<std::string> Trace::Deserialize(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) lines.push_back(l);
  return lines;
}

namespace {

std::vector<std::string> RunScenario(const std::string& root, const Scenario& scenario,
                                     const ParityOptions& options) {
  if (options.setup) {
    Trace setup(root);
    options.setup(setup);
  }
  if (!options.as && options.umask == 022) {
    mode_t old = umask(022);
    Trace t(root);
    scenario(t);
    umask(old);
    return t.lines();
  }
  ChildResult r = RunInChild(
      [&] {
        umask(static_cast<mode_t>(options.umask));
        Trace t(root);
        scenario(t);
        return t.Serialize();
      },
      options.as);
  if (!r.ok) {
    ADD_FAILURE() << "scenario child on " << root << ": " << r.problem;
    return {"<child failed: " + r.problem + ">"};
  }
  return Trace::Deserialize(r.output);
}

}  // namespace

void ExpectParity(const std::string& native_root, const std::string& volume_root,
                  const Scenario& scenario, const ParityOptions& options) {
  std::vector<std::string> native = RunScenario(native_root, scenario, options);
  std::vector<std::string> volume = RunScenario(volume_root, scenario, options);
  EXPECT_FALSE(native.empty()) << "scenario recorded nothing";
  if (getenv("CLAIMFS_TEST_TRACE") != nullptr) {
    for (const std::string& l : native) fprintf(stderr, "  trace: %s\n", l.c_str());
  }
  if (native == volume) return;
  std::ostringstream msg;
  size_t n = std::max(native.size(), volume.size());
  bool marked = false;
  msg << "volume differs from native ext4 (first difference marked >>):\n";
  for (size_t i = 0; i < n; ++i) {
    std::string a = i < native.size() ? native[i] : "<missing>";
    std::string b = i < volume.size() ? volume[i] : "<missing>";
    if (a == b) {
      msg << "     " << a << "\n";
    } else {
      msg << (marked ? "  !  " : ">> ! ") << "native: " << a << "\n"
          << "       volume: " << b << "\n";
      marked = true;
    }
  }
  ADD_FAILURE() << msg.str();
}

}  // namespace claimfs::it
