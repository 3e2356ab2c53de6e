// claimctl: kubectl's language for claimfs. Today only `apply --dry-run=client` works, which needs
// no daemon; the other commands arrive with the daemon's API and say so until then.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "claimfs/yaml/codec.h"
#include "claimfs/yaml/manifest.h"

namespace claimfs::claimctl {
namespace {

namespace fs = std::filesystem;

constexpr int kExitOk = 0;
constexpr int kExitError = 1;

struct Source {
  std::string name;  // as diagnostics show it
  std::string text;
};

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

// Expands -f arguments as kubectl does: "-" is stdin, a directory is its manifest files in name
// order (not recursive), anything else a file. Reports what cannot be read on stderr.
bool CollectSources(const std::vector<std::string>& args, std::vector<Source>* out) {
  bool ok = true;
  for (const std::string& arg : args) {
    if (arg == "-") {
      std::ostringstream text;
      text << std::cin.rdbuf();
      out->push_back({"<stdin>", text.str()});
      continue;
    }
    std::error_code ec;
    fs::file_status st = fs::status(arg, ec);
    if (ec || !fs::exists(st)) {
      std::cerr << "error: the path \"" << arg << "\" does not exist\n";
      ok = false;
      continue;
    }
    std::vector<fs::path> files;
    if (fs::is_directory(st)) {
      for (const auto& entry : fs::directory_iterator(arg, ec)) {
        if (entry.is_regular_file() && IsManifestFile(entry.path())) files.push_back(entry.path());
      }
      if (ec) {
        std::cerr << "error: cannot list \"" << arg << "\": " << ec.message() << "\n";
        ok = false;
      }
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(arg);
    }
    for (const fs::path& file : files) {
      Source source{file.string(), ""};
      if (!ReadFile(file, &source.text)) {
        std::cerr << "error: cannot read \"" << file.string() << "\"\n";
        ok = false;
        continue;
      }
      out->push_back(std::move(source));
    }
  }
  return ok;
}

struct ApplyOptions {
  std::vector<std::string> files;
  std::string dry_run = "none";
  std::string output;
};

int NeedsDaemon(const std::string& what) {
  std::cerr << "error: " << what
            << " needs the claimfs daemon (claimfsd), which this claimctl cannot reach yet; "
               "only `claimctl apply --dry-run=client -f FILE` works without it\n";
  return kExitError;
}

int RunApply(const ApplyOptions& options) {
  if (options.dry_run != "client") {
    return NeedsDaemon(options.dry_run == "server" ? "`claimctl apply --dry-run=server`"
                                                   : "`claimctl apply` without --dry-run=client");
  }
  std::vector<Source> sources;
  bool ok = CollectSources(options.files, &sources);
  size_t objects = 0;
  for (const Source& source : sources) {
    yaml::ManifestSet set = yaml::ParseManifests(source.text, source.name);
    for (const auto& w : set.warnings) {
      std::cerr << "Warning: " << w.message << " (" << w.file << ":" << w.line << ":" << w.column
                << ")\n";
    }
    for (const auto& e : set.errors) std::cerr << "error: " << e.ToString() << "\n";
    ok = ok && set.ok();
    for (const auto& m : set.objects) {
      ++objects;
      if (options.output == "yaml") {
        std::cout << "---\n" << yaml::ToYaml(m.object);
      } else if (options.output == "json") {
        std::cout << yaml::ToJson(m.object).dump(4, ' ', false,
                                                 nlohmann::json::error_handler_t::replace)
                  << "\n";
      } else if (options.output == "name") {
        std::cout << yaml::ResourceName(m.object) << "\n";
      } else {
        std::cout << yaml::ResourceName(m.object) << " created (dry run)\n";
      }
    }
  }
  if (ok && objects == 0) {
    std::cerr << "error: no objects passed to apply\n";
    ok = false;
  }
  return ok ? kExitOk : kExitError;
}

}  // namespace
}  // namespace claimfs::claimctl

int main(int argc, char** argv) {
  using namespace claimfs::claimctl;
  CLI::App app{"claimctl controls claimfs volumes the way kubectl controls Kubernetes ones."};
  app.require_subcommand(1);

  ApplyOptions apply_options;
  CLI::App* apply = app.add_subcommand(
      "apply", "Create or update objects from manifests (YAML or JSON, --- between documents)");
  apply
      ->add_option("-f,--filename", apply_options.files,
                   "A manifest file, a directory of *.yaml/*.yml/*.json files, or - for stdin")
      ->required();
  apply
      ->add_option("--dry-run", apply_options.dry_run,
                   "client: parse, default and validate only, without the daemon")
      ->check(CLI::IsMember({"none", "client", "server"}));
  apply->add_option("-o,--output", apply_options.output, "Print the objects as yaml, json or name")
      ->check(CLI::IsMember({"yaml", "json", "name"}));
  int exit_code = kExitOk;
  apply->callback([&] { exit_code = RunApply(apply_options); });

  // Commands of the daemon's API: listed so that --help shows them and they explain themselves.
  static const std::pair<const char*, const char*> kDaemonCommands[] = {
      {"get", "List objects: get pv|pvc|sc [NAME] [-o wide|yaml|json]"},
      {"describe", "Show an object with its events"},
      {"delete", "Delete objects by name or manifest"},
      {"patch", "Change fields of an object (e.g. grow a claim)"},
      {"wait", "Wait for a condition on an object"},
      {"use", "Hold a lease on a claim while a command runs: use CLAIM -- CMD"},
      {"df", "Show usage per volume"},
  };
  for (const auto& [name, help] : kDaemonCommands) {
    CLI::App* sub = app.add_subcommand(name, help);
    sub->allow_extras();
    sub->prefix_command();
    std::string command = name;
    sub->callback([&exit_code, command] { exit_code = NeedsDaemon("`claimctl " + command + "`"); });
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
