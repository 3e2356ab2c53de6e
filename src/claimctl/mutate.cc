// claimctl delete and patch.
#include <iostream>
#include <thread>

#include "claimctl/commands.h"
#include "claimctl/duration.h"
#include "claimctl/sources.h"
#include "claimfs/yaml/codec.h"
#include "claimfs/yaml/manifest.h"

namespace claimfs::claimctl {
namespace {

using nlohmann::json;

bool IsConnectFailure(const Status& s) {
  return s.code() == StatusCode::kUnavailable && s.message().rfind("cannot connect", 0) == 0;
}

}  // namespace

std::string TimeoutMessage(const Target& target) {
  return "timed out waiting for the condition on " + std::string(InfoOf(target.kind).plural) + "/" +
         target.name;
}

Status WaitUntilGone(Api& api, const std::vector<Target>& targets,
                     std::optional<Clock::time_point> deadline,
                     const std::function<void(const Target&)>& on_gone) {
  for (const Target& target : targets) {
    while (true) {
      Result<json> object = api.Get(ObjectPath(target.kind, target.ns, target.name));
      if (!object.ok()) {
        if (object.status().code() != StatusCode::kNotFound) return object.status();
        break;
      }
      if (!target.uid.empty() && UidOf(*object) != target.uid) break;
      if (deadline && Clock::now() >= *deadline) {
        return Status::Unavailable(TimeoutMessage(target));
      }
      std::this_thread::sleep_for(kPollInterval);
    }
    if (on_gone) on_gone(target);
  }
  return Status::Ok();
}

int RunDelete(const GlobalOptions& global, const DeleteOptions& options, Io& io) {
  Result<std::chrono::nanoseconds> timeout = ParseGoDuration(options.timeout);
  if (!timeout.ok()) {
    io.err << ErrorLine(timeout.status()) << "\n";
    return kExitError;
  }
  std::vector<Target> targets;
  bool ok = true;
  Api api(global);
  if (!options.files.empty()) {
    if (!options.args.empty()) {
      io.err << "error: there is no need to specify a resource type as a separate argument when "
                "passing -f\n";
      return kExitError;
    }
    std::vector<Source> sources;
    ok = CollectSources(options.files, io.in, io.err, &sources);
    for (const Source& source : sources) {
      yaml::ManifestSet set = yaml::ParseManifests(source.text, source.name,
                                                   {/*set_defaults=*/false,
                                                    /*validate=*/false});
      for (const auto& e : set.errors) io.err << "error: " << e.ToString() << "\n";
      if (!set.ok()) {
        ok = false;
        continue;
      }
      for (const yaml::Manifest& m : set.objects) {
        std::optional<Kind> kind = KindFromName(yaml::KindOf(m.object));
        if (!kind) continue;
        const model::ObjectMeta& meta = yaml::MetadataOf(m.object);
        std::string ns;
        if (InfoOf(*kind).namespaced)
          ns = meta.namespace_.empty() ? global.namespace_ : meta.namespace_;
        targets.push_back({*kind, ns, meta.name, ""});
      }
    }
    if (!ok) return kExitError;
  } else {
    if (options.args.empty()) {
      io.err << "error: You must provide one or more resources by argument or filename.\n";
      return kExitError;
    }
    Result<ResourceArgs> resources = ParseResourceArgs(options.args);
    if (!resources.ok()) {
      io.err << ErrorLine(resources.status()) << "\n";
      return kExitError;
    }
    if (resources->objects.empty() && !options.all) {
      io.err << "error: resource(s) were provided, but no name was specified\n";
      return kExitError;
    }
    if (options.all) {
      if (!resources->objects.empty()) {
        io.err << "error: cannot set --all and specify names\n";
        return kExitError;
      }
      for (Kind kind : resources->kinds) {
        std::string ns = InfoOf(kind).namespaced ? global.namespace_ : "";
        Result<std::vector<json>> items = api.List(CollectionPath(kind, ns));
        if (!items.ok()) {
          io.err << ErrorLine(items.status()) << "\n";
          return kExitError;
        }
        SortByNamespaceAndName(&*items);
        for (const json& item : *items) targets.push_back({kind, ns, NameOf(item), ""});
      }
    } else {
      for (const ObjectRef& ref : resources->objects) {
        std::string ns = InfoOf(ref.kind).namespaced ? global.namespace_ : "";
        targets.push_back({ref.kind, ns, ref.name, ""});
      }
    }
  }

  std::vector<Target> deleted;
  for (Target& target : targets) {
    Result<json> result = api.Call("DELETE", ObjectPath(target.kind, target.ns, target.name));
    if (!result.ok()) {
      if (result.status().code() == StatusCode::kNotFound && options.ignore_not_found) continue;
      io.err << ErrorLine(result.status()) << "\n";
      ok = false;
      if (IsConnectFailure(result.status())) break;
      continue;
    }
    target.uid = UidOf(*result);
    io.out << InfoOf(target.kind).singular << " \"" << target.name << "\" deleted\n" << std::flush;
    deleted.push_back(target);
  }
  // As kubectl's delete: nothing matched and nothing failed (--all on an empty list, or every
  // name absent under --ignore-not-found). kubectl writes this line to stdout, unlike get.
  if (ok && deleted.empty()) io.out << "No resources found\n";
  if (options.wait && !deleted.empty()) {
    std::optional<Clock::time_point> deadline;
    if (timeout->count() > 0) {
      deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(*timeout);
    }
    Status waited = WaitUntilGone(api, deleted, deadline, nullptr);
    if (!waited.ok()) {
      io.err << ErrorLine(waited) << "\n";
      ok = false;
    }
  }
  return ok ? kExitOk : kExitError;
}

int RunPatch(const GlobalOptions& global, const PatchOptions& options, Io& io) {
  if (options.patch.empty()) {
    io.err << "error: must specify -p to patch\n";
    return kExitError;
  }
  Result<ResourceArgs> resources = ParseResourceArgs(options.args);
  if (!resources.ok()) {
    io.err << ErrorLine(resources.status()) << "\n";
    return kExitError;
  }
  if (resources->objects.size() != 1) {
    io.err << "error: patch needs exactly one object: claimctl patch TYPE NAME -p PATCH\n";
    return kExitError;
  }
  std::string content_type;
  if (options.type == "merge") {
    content_type = "application/merge-patch+json";
  } else if (options.type == "json") {
    content_type = "application/json-patch+json";
  } else if (options.type == "strategic") {
    content_type = "application/strategic-merge-patch+json";
  } else {
    io.err << "error: --type must be one of [json merge strategic], not \"" << options.type
           << "\"\n";
    return kExitError;
  }
  // kubectl reads -p as YAML or JSON (JSON is YAML too, but json::parse keeps JSON's numbers
  // and escapes exact).
  json patch = json::parse(options.patch, nullptr, false);
  if (patch.is_discarded()) {
    Result<json> yaml_patch = yaml::ParseValue(options.patch);
    if (!yaml_patch.ok()) {
      io.err << "error: unable to parse \"" << options.patch
             << "\": yaml: " << yaml_patch.status().message() << "\n";
      return kExitError;
    }
    patch = std::move(*yaml_patch);
  }
  if (options.type == "json" ? !patch.is_array() : !patch.is_object()) {
    io.err << "error: unable to parse \"" << options.patch << "\": a " << options.type
           << " patch must be " << (options.type == "json" ? "a list" : "an object") << "\n";
    return kExitError;
  }
  const ObjectRef& ref = resources->objects.front();
  const std::string ns = InfoOf(ref.kind).namespaced ? global.namespace_ : "";
  const std::string path = ObjectPath(ref.kind, ns, ref.name);
  Api api(global);
  Result<json> before = api.Get(path);
  if (!before.ok()) {
    io.err << ErrorLine(before.status()) << "\n";
    return kExitError;
  }
  const bool dry_run = options.dry_run == "server";
  Result<json> after =
      api.Call("PATCH", path + (dry_run ? "?dryRun=All" : ""), &patch, content_type);
  if (!after.ok()) {
    io.err << ErrorLine(after.status()) << "\n";
    return kExitError;
  }
  bool changed = WithoutVolatileFields(*before) != WithoutVolatileFields(*after);
  io.out << ResourceName(ref.kind, ref.name) << " patched" << (changed ? "" : " (no change)")
         << (dry_run ? " (server dry run)" : "") << "\n";
  return kExitOk;
}

}  // namespace claimfs::claimctl
