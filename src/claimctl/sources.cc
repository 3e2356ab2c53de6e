#include "claimctl/sources.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <sstream>

#include "claimctl/sudo_user.h"

namespace claimfs::claimctl {
namespace {

namespace fs = std::filesystem;

bool IsManifestFile(const fs::path& path) {
  std::string ext = path.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

// 0, or the errno of the open or read that failed.
int ReadFile(const fs::path& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return err;
    }
    out->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return 0;
}

bool Collect(const std::vector<std::string>& args, std::istream& in, std::ostream& err,
             std::vector<Source>* out) {
  bool ok = true;
  for (const std::string& arg : args) {
    if (arg == "-") {
      std::ostringstream text;
      text << in.rdbuf();
      out->push_back({"<stdin>", text.str()});
      continue;
    }
    std::error_code ec;
    fs::file_status st = fs::status(arg, ec);
    if (ec && ec != std::errc::no_such_file_or_directory) {
      err << "error: cannot read \"" << arg << "\": " << ec.message() << "\n";
      ok = false;
      continue;
    }
    if (ec || !fs::exists(st)) {
      err << "error: the path \"" << arg << "\" does not exist\n";
      ok = false;
      continue;
    }
    std::vector<fs::path> files;
    if (fs::is_directory(st)) {
      for (const auto& entry : fs::directory_iterator(arg, ec)) {
        if (entry.is_regular_file() && IsManifestFile(entry.path())) files.push_back(entry.path());
      }
      if (ec) {
        err << "error: cannot list \"" << arg << "\": " << ec.message() << "\n";
        ok = false;
      }
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(arg);
    }
    for (const fs::path& file : files) {
      Source source{file.string(), ""};
      if (int read_errno = ReadFile(file, &source.text); read_errno != 0) {
        err << "error: cannot read \"" << file.string() << "\": " << std::strerror(read_errno)
            << "\n";
        ok = false;
        continue;
      }
      out->push_back(std::move(source));
    }
  }
  return ok;
}

}  // namespace

bool CollectSources(const std::vector<std::string>& args, std::istream& in, std::ostream& err,
                    std::vector<Source>* out) {
  // Under sudo, root's access would let the user read any file (and see it echoed in errors).
  Result<std::optional<SudoUser>> sudo_user = FindSudoUser();
  if (!sudo_user.ok()) {
    err << "error: " << sudo_user.status().message() << "\n";
    return false;
  }
  if (!sudo_user->has_value()) return Collect(args, in, err, out);
  bool ok = false;
  Status switched = RunWithFileAccessOf(**sudo_user, [&] { ok = Collect(args, in, err, out); });
  if (!switched.ok()) {
    err << "error: " << switched.message() << "\n";
    return false;
  }
  return ok;
}

}  // namespace claimfs::claimctl
