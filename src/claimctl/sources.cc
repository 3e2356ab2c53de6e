#include "claimctl/sources.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

namespace claimfs::claimctl {
namespace {

namespace fs = std::filesystem;

bool IsManifestFile(const fs::path& path) {
  std::string ext = path.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

bool ReadFile(const fs::path& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

}  // namespace

bool CollectSources(const std::vector<std::string>& args, std::istream& in, std::ostream& err,
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
      if (!ReadFile(file, &source.text)) {
        err << "error: cannot read \"" << file.string() << "\"\n";
        ok = false;
        continue;
      }
      out->push_back(std::move(source));
    }
  }
  return ok;
}

}  // namespace claimfs::claimctl
