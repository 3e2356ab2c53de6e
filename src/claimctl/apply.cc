// claimctl apply: create what is missing, three-way merge what exists (kubectl's client-side
// apply), in file order, reporting each object's failure (an invalid document's too) and
// carrying on.
#include "claimctl/apply.h"

#include <iostream>
#include <map>
#include <sstream>
#include <utility>

#include "claimctl/commands.h"
#include "claimctl/merge_patch.h"
#include "claimctl/sources.h"
#include "claimfs/yaml/codec.h"
#include "claimfs/yaml/manifest.h"

namespace claimfs::claimctl {

using nlohmann::json;

json WithLastApplied(json manifest) {
  if (!manifest.is_object()) return manifest;
  manifest.erase("status");
  json& meta = manifest["metadata"];
  if (meta.is_object() && meta.contains("annotations") && meta["annotations"].is_object()) {
    meta["annotations"].erase(kLastAppliedAnnotation);
    if (meta["annotations"].empty()) meta.erase("annotations");
  }
  std::string last_applied = manifest.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  manifest["metadata"]["annotations"][kLastAppliedAnnotation] = std::move(last_applied);
  return manifest;
}

json ApplyPatch(const json& modified, const json& current) {
  json original;
  if (current.is_object() && current.contains("metadata")) {
    const json& meta = current["metadata"];
    if (meta.is_object() && meta.contains("annotations") && meta["annotations"].is_object()) {
      auto it = meta["annotations"].find(kLastAppliedAnnotation);
      if (it != meta["annotations"].end() && it->is_string()) {
        original = json::parse(it->get<std::string>(), nullptr, false);
        if (original.is_discarded()) original = json();
      }
    }
  }
  return ThreeWayMergePatch(original, modified, current);
}

namespace {

bool HasLastApplied(const json& object) {
  return object.contains("metadata") && object["metadata"].is_object() &&
         object["metadata"].contains("annotations") &&
         object["metadata"]["annotations"].is_object() &&
         object["metadata"]["annotations"].contains(kLastAppliedAnnotation);
}

void PrintDiagnostics(const yaml::ManifestSet& set, std::ostream& err) {
  for (const auto& w : set.warnings) {
    err << "Warning: " << w.message << " (" << w.file << ":" << w.line << ":" << w.column << ")\n";
  }
  for (const auto& e : set.errors) err << "error: " << e.ToString() << "\n";
}

void PrintObject(const json& object, const std::string& output, std::ostream& out) {
  if (output == "yaml") {
    out << "---\n" << yaml::ToYaml(object);
  } else {
    out << object.dump(4, ' ', false, json::error_handler_t::replace) << "\n";
  }
}

// The original client-only dry run: parse, default, validate and print, no daemon needed.
int RunClientDryRun(const ApplyOptions& options, Io& io) {
  std::vector<Source> sources;
  // A path that cannot be read stops everything before anything is applied, as in kubectl.
  if (!CollectSources(options.files, io.in, io.err, &sources)) return kExitError;
  bool ok = true;
  size_t objects = 0;
  for (const Source& source : sources) {
    yaml::ManifestSet set = yaml::ParseManifests(source.text, source.name);
    PrintDiagnostics(set, io.err);
    ok = ok && set.ok();
    for (const auto& m : set.objects) {
      ++objects;
      if (options.output == "yaml") {
        io.out << "---\n" << yaml::ToYaml(m.object);
      } else if (options.output == "json") {
        io.out << yaml::ToJson(m.object).dump(4, ' ', false, json::error_handler_t::replace)
               << "\n";
      } else if (options.output == "name") {
        io.out << yaml::ResourceName(m.object) << "\n";
      } else {
        io.out << yaml::ResourceName(m.object) << " created (dry run)\n";
      }
    }
  }
  if (ok && objects == 0) {
    io.err << "error: no objects passed to apply\n";
    ok = false;
  }
  return ok ? kExitOk : kExitError;
}

struct Pending {
  Kind kind;
  std::string name;
  std::string ns;  // empty for cluster-scoped kinds
  json manifest;   // as written, undefaulted
  std::string resource_name;
};

// Applies one object; returns the line to print or the failure.
Result<std::string> ApplyOne(Api& api, const Pending& p, const ApplyOptions& options, Io& io) {
  const bool server_dry_run = options.dry_run == "server";
  const std::string query = server_dry_run ? "?dryRun=All" : "";
  const std::string suffix = server_dry_run ? " (server dry run)" : "";
  json modified = WithLastApplied(p.manifest);

  Result<json> current = api.Get(ObjectPath(p.kind, p.ns, p.name));
  json result;
  std::string verb;
  if (!current.ok()) {
    if (current.status().code() != StatusCode::kNotFound) return current.status();
    Result<json> created = api.Call("POST", CollectionPath(p.kind, p.ns) + query, &modified);
    if (!created.ok()) return created.status();
    result = std::move(*created);
    verb = "created";
  } else {
    if (!HasLastApplied(*current)) {
      io.err << "Warning: resource " << InfoOf(p.kind).plural << "/" << p.name << " is missing the "
             << kLastAppliedAnnotation
             << " annotation which is required by claimctl apply. claimctl apply should only "
                "be used on resources created declaratively by claimctl apply. The missing "
                "annotation will be patched automatically.\n";
    }
    json patch = ApplyPatch(modified, *current);
    if (patch.empty()) {
      result = std::move(*current);
      verb = "unchanged";
    } else {
      Result<json> patched = api.Call("PATCH", ObjectPath(p.kind, p.ns, p.name) + query, &patch,
                                      "application/merge-patch+json");
      if (!patched.ok()) return patched.status();
      result = std::move(*patched);
      verb = "configured";
    }
  }
  if (options.output == "name") return p.resource_name + "\n";
  if (options.output == "yaml" || options.output == "json") {
    std::ostringstream text;
    PrintObject(result, options.output, text);
    return text.str();
  }
  return p.resource_name + " " + verb + suffix + "\n";
}

}  // namespace

int RunApply(const GlobalOptions& global, const ApplyOptions& options, Io& io) {
  if (options.dry_run == "client") return RunClientDryRun(options, io);

  std::vector<Source> sources;
  // A path that cannot be read stops everything before anything is applied, as in kubectl.
  if (!CollectSources(options.files, io.in, io.err, &sources)) return kExitError;
  bool ok = true;
  std::vector<Pending> pending;
  for (const Source& source : sources) {
    // Validated and defaulted as the server will; what is sent is the manifest as written.
    yaml::ManifestSet checked = yaml::ParseManifests(source.text, source.name);
    PrintDiagnostics(checked, io.err);
    // A document with errors is reported and skipped; the others are applied (kubectl applies
    // every object it could read and exits 1 for the rest, and so does --dry-run=client here).
    if (!checked.ok()) ok = false;
    yaml::ManifestSet raw = yaml::ParseManifests(source.text, source.name,
                                                 {/*set_defaults=*/false,
                                                  /*validate=*/false});
    std::map<std::pair<int, int>, const yaml::Manifest*> raw_at;
    for (const yaml::Manifest& m : raw.objects) raw_at[{m.line, m.column}] = &m;
    for (const yaml::Manifest& m : checked.objects) {
      auto it = raw_at.find({m.line, m.column});
      const yaml::Object& object = it != raw_at.end() ? it->second->object : m.object;
      std::optional<Kind> kind = KindFromName(yaml::KindOf(object));
      if (!kind) continue;  // ParseManifests refuses kinds claimctl does not know
      Pending p{*kind, yaml::MetadataOf(object).name, "", yaml::ToJson(object),
                yaml::ResourceName(object)};
      if (InfoOf(*kind).namespaced) {
        std::string written = yaml::MetadataOf(object).namespace_;
        if (!written.empty() && global.namespace_explicit && written != global.namespace_) {
          io.err << "error: the namespace from the provided object \"" << written
                 << "\" does not match the namespace \"" << global.namespace_
                 << "\". You must pass '--namespace=" << written
                 << "' to perform this operation.\n";
          ok = false;
          continue;
        }
        p.ns = written.empty() ? global.namespace_ : written;
        p.manifest["metadata"]["namespace"] = p.ns;
      }
      pending.push_back(std::move(p));
    }
  }
  if (pending.empty()) {
    if (ok) io.err << "error: no objects passed to apply\n";
    return kExitError;
  }

  Api api(global);
  for (size_t i = 0; i < pending.size(); ++i) {
    Result<std::string> line = ApplyOne(api, pending[i], options, io);
    if (!line.ok()) {
      io.err << ErrorLine(line.status()) << "\n";
      ok = false;
      // Without the daemon, every other object would fail the same way.
      if (line.status().code() == StatusCode::kUnavailable &&
          line.status().message().rfind("cannot connect", 0) == 0) {
        break;
      }
      continue;
    }
    io.out << *line << std::flush;
  }
  return ok ? kExitOk : kExitError;
}

}  // namespace claimfs::claimctl
