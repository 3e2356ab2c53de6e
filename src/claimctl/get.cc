// claimctl get and describe: read objects and print them as kubectl does.
#include <algorithm>
#include <iostream>
#include <map>

#include "claimctl/commands.h"
#include "claimctl/jsonpath.h"
#include "claimctl/label_selector.h"
#include "claimctl/printers.h"
#include "claimctl/tabwriter.h"
#include "claimfs/model/selector.h"
#include "claimfs/yaml/codec.h"
#include "claimfs/yaml/manifest.h"

namespace claimfs::claimctl {
namespace {

using nlohmann::json;

std::map<std::string, std::string> LabelsOf(const json& object) {
  std::map<std::string, std::string> labels;
  if (object.contains("metadata") && object["metadata"].is_object() &&
      object["metadata"].contains("labels") && object["metadata"]["labels"].is_object()) {
    for (auto it = object["metadata"]["labels"].begin(); it != object["metadata"]["labels"].end();
         ++it) {
      if (it->is_string()) labels[it.key()] = it->get<std::string>();
    }
  }
  return labels;
}

std::string NoResourcesLine(const std::vector<Kind>& kinds, bool all_namespaces,
                            const std::string& ns) {
  bool namespaced =
      std::any_of(kinds.begin(), kinds.end(), [](Kind k) { return InfoOf(k).namespaced; });
  if (namespaced && !all_namespaces) return "No resources found in " + ns + " namespace.";
  return "No resources found";
}

template <typename T, typename Decode>
Result<std::vector<T>> DecodeAll(const std::vector<json>& items, Decode decode) {
  std::vector<T> out;
  for (const json& item : items) {
    Result<T> object = decode(item);
    if (!object.ok()) {
      return Status::Internal("cannot decode " + NameOf(item) +
                              " from claimfsd: " + object.status().message());
    }
    out.push_back(std::move(*object));
  }
  return out;
}

// The table rows of `items` of one kind, header included when options.headers.
Result<std::vector<std::vector<std::string>>> RowsFor(Kind kind, const std::vector<json>& items,
                                                      const TableOptions& options) {
  switch (kind) {
    case Kind::kPersistentVolume: {
      auto pvs = DecodeAll<model::PersistentVolume>(items, yaml::PersistentVolumeFromJson);
      if (!pvs.ok()) return pvs.status();
      return PersistentVolumeRows(*pvs, options);
    }
    case Kind::kPersistentVolumeClaim: {
      auto pvcs =
          DecodeAll<model::PersistentVolumeClaim>(items, yaml::PersistentVolumeClaimFromJson);
      if (!pvcs.ok()) return pvcs.status();
      return PersistentVolumeClaimRows(*pvcs, options);
    }
    case Kind::kStorageClass: {
      auto classes = DecodeAll<model::StorageClass>(items, yaml::StorageClassFromJson);
      if (!classes.ok()) return classes.status();
      return StorageClassRows(*classes, options);
    }
  }
  return Status::Internal("unknown kind");
}

// Objects of each kind, fetched by name or listed, with the errors met on the way.
struct Fetched {
  std::vector<std::pair<Kind, std::vector<json>>> by_kind;
  std::vector<Status> errors;
  bool connect_failed = false;
};

Fetched Fetch(Api& api, const ResourceArgs& resources, const std::string& ns,
              const std::optional<model::LabelSelector>& selector) {
  Fetched fetched;
  for (Kind kind : resources.kinds) fetched.by_kind.push_back({kind, {}});
  auto slot = [&fetched](Kind kind) -> std::vector<json>& {
    for (auto& [k, items] : fetched.by_kind) {
      if (k == kind) return items;
    }
    return fetched.by_kind.front().second;  // unreachable: every kind has a slot
  };
  auto failed = [&fetched](const Status& s) {
    fetched.errors.push_back(s);
    if (s.code() == StatusCode::kUnavailable && s.message().rfind("cannot connect", 0) == 0) {
      fetched.connect_failed = true;
    }
  };
  if (resources.objects.empty()) {
    for (Kind kind : resources.kinds) {
      Result<std::vector<json>> items =
          api.List(CollectionPath(kind, InfoOf(kind).namespaced ? ns : ""));
      if (!items.ok()) {
        failed(items.status());
        if (fetched.connect_failed) break;
        continue;
      }
      std::vector<json>& out = slot(kind);
      for (json& item : *items) {
        if (selector && !model::Matches(*selector, LabelsOf(item))) continue;
        out.push_back(std::move(item));
      }
      SortByNamespaceAndName(&out);
    }
    return fetched;
  }
  for (const ObjectRef& ref : resources.objects) {
    Result<json> object = api.Get(ObjectPath(ref.kind, ns, ref.name));
    if (!object.ok()) {
      failed(object.status());
      if (fetched.connect_failed) break;
      continue;
    }
    slot(ref.kind).push_back(std::move(*object));
  }
  return fetched;
}

Status CheckSelectorAndNames(const ResourceArgs& resources, const std::string& selector,
                             bool all_namespaces) {
  if (!selector.empty() && !resources.objects.empty()) {
    return Status::Invalid("name cannot be provided when a selector is specified");
  }
  if (all_namespaces && !resources.objects.empty()) {
    for (const ObjectRef& ref : resources.objects) {
      if (InfoOf(ref.kind).namespaced) {
        return Status::Invalid("a resource cannot be retrieved by name across all namespaces");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

int RunGet(const GlobalOptions& global, const GetOptions& options, Io& io) {
  if (options.args.empty()) {
    io.err << "error: you must specify the type of resource to get. Use one of pv, pvc, sc or "
              "all\n";
    return kExitError;
  }
  Result<ResourceArgs> resources = ParseResourceArgs(options.args);
  if (!resources.ok()) {
    io.err << ErrorLine(resources.status()) << "\n";
    return kExitError;
  }
  Status check = CheckSelectorAndNames(*resources, options.selector, options.all_namespaces);
  if (!check.ok()) {
    io.err << ErrorLine(check) << "\n";
    return kExitError;
  }
  std::optional<model::LabelSelector> selector;
  if (!options.selector.empty()) {
    Result<model::LabelSelector> parsed = ParseLabelSelector(options.selector);
    if (!parsed.ok()) {
      io.err << ErrorLine(parsed.status()) << "\n";
      return kExitError;
    }
    selector = std::move(*parsed);
  }
  const std::string ns = options.all_namespaces ? "" : global.namespace_;

  Api api(global);
  Fetched fetched = Fetch(api, *resources, ns, selector);
  size_t found = 0;
  for (const auto& [kind, items] : fetched.by_kind) found += items.size();

  if (options.output == "name") {
    for (const auto& [kind, items] : fetched.by_kind) {
      for (const json& item : items) io.out << ResourceName(kind, NameOf(item)) << "\n";
    }
  } else if (options.output == "json" || options.output == "yaml" ||
             options.output.rfind("jsonpath=", 0) == 0) {
    json doc;
    if (resources->objects.size() == 1 && found == 1) {
      for (const auto& [kind, items] : fetched.by_kind) {
        if (!items.empty()) doc = items.front();
      }
    } else if (found > 0 || fetched.errors.empty()) {
      doc = {{"apiVersion", "v1"},
             {"kind", "List"},
             {"items", json::array()},
             {"metadata", {{"resourceVersion", ""}}}};
      for (const auto& [kind, items] : fetched.by_kind) {
        for (const json& item : items) doc["items"].push_back(item);
      }
    }
    if (!doc.is_null()) {
      if (options.output.rfind("jsonpath=", 0) == 0) {
        Result<std::vector<json>> values = EvaluateJsonPathAll(options.output.substr(9), doc);
        if (!values.ok()) {
          fetched.errors.push_back(values.status());
        } else {
          // Space-separated, and no newline, as kubectl.
          for (size_t i = 0; i < values->size(); ++i) {
            io.out << (i ? " " : "") << JsonPathText((*values)[i]);
          }
        }
      } else if (options.output == "json") {
        io.out << doc.dump(4, ' ', false, json::error_handler_t::replace) << "\n";
      } else {
        io.out << yaml::ToYaml(doc);
      }
    }
  } else if (found > 0) {
    TableOptions table;
    table.now = Clock::now();
    table.wide = options.output == "wide";
    table.with_kind = resources->kinds.size() > 1;
    table.headers = !options.no_headers;
    std::vector<VolumeStats> stats;
    if (table.wide) {
      Result<std::vector<VolumeStats>> fetched_stats = api.Stats();
      if (fetched_stats.ok()) stats = std::move(*fetched_stats);
      table.stats = &stats;
    }
    bool first = true;
    for (const auto& [kind, items] : fetched.by_kind) {
      if (items.empty()) continue;
      TableOptions kind_options = table;
      kind_options.with_namespace = options.all_namespaces && InfoOf(kind).namespaced;
      Result<std::vector<std::vector<std::string>>> rows = RowsFor(kind, items, kind_options);
      if (!rows.ok()) {
        fetched.errors.push_back(rows.status());
        continue;
      }
      if (!first) io.out << "\n";
      first = false;
      io.out << FormatTable(*rows);
    }
  }
  io.out << std::flush;
  for (const Status& error : fetched.errors) io.err << ErrorLine(error) << "\n";
  if (found == 0 && fetched.errors.empty() && resources->objects.empty() &&
      options.output != "json" && options.output != "yaml" &&
      options.output.rfind("jsonpath=", 0) != 0) {
    io.err << NoResourcesLine(resources->kinds, options.all_namespaces, global.namespace_) << "\n";
  }
  return fetched.errors.empty() ? kExitOk : kExitError;
}

int RunDescribe(const GlobalOptions& global, const DescribeOptions& options, Io& io) {
  if (options.args.empty()) {
    io.err << "error: you must specify the type of resource to describe. Use one of pv, pvc or "
              "sc\n";
    return kExitError;
  }
  Result<ResourceArgs> resources = ParseResourceArgs(options.args);
  if (!resources.ok()) {
    io.err << ErrorLine(resources.status()) << "\n";
    return kExitError;
  }
  Status check = CheckSelectorAndNames(*resources, options.selector, options.all_namespaces);
  if (!check.ok()) {
    io.err << ErrorLine(check) << "\n";
    return kExitError;
  }
  std::optional<model::LabelSelector> selector;
  if (!options.selector.empty()) {
    Result<model::LabelSelector> parsed = ParseLabelSelector(options.selector);
    if (!parsed.ok()) {
      io.err << ErrorLine(parsed.status()) << "\n";
      return kExitError;
    }
    selector = std::move(*parsed);
  }
  const std::string ns = options.all_namespaces ? "" : global.namespace_;
  Api api(global);
  Fetched fetched = Fetch(api, *resources, ns, selector);

  const Clock::time_point now = Clock::now();
  std::optional<std::vector<VolumeStats>> stats;
  bool first = true;
  size_t found = 0;
  for (const auto& [kind, items] : fetched.by_kind) {
    for (const json& item : items) {
      ++found;
      std::string name = NameOf(item);
      std::string item_ns = NamespaceOf(item);
      Result<std::vector<model::Event>> events_result =
          api.Events(kind, item_ns, name, UidOf(item));
      const std::vector<model::Event>* events = events_result.ok() ? &*events_result : nullptr;
      if (!stats && kind != Kind::kStorageClass) {
        Result<std::vector<VolumeStats>> s = api.Stats();
        stats = s.ok() ? std::move(*s) : std::vector<VolumeStats>();
      }
      std::string text;
      Status decode_error;
      switch (kind) {
        case Kind::kPersistentVolume: {
          Result<model::PersistentVolume> pv = yaml::PersistentVolumeFromJson(item);
          if (!pv.ok()) {
            decode_error = pv.status();
            break;
          }
          text = DescribePersistentVolume(*pv, events, now, FindStatsByVolume(*stats, name));
          break;
        }
        case Kind::kPersistentVolumeClaim: {
          Result<model::PersistentVolumeClaim> pvc = yaml::PersistentVolumeClaimFromJson(item);
          if (!pvc.ok()) {
            decode_error = pvc.status();
            break;
          }
          Result<std::vector<std::string>> used_by = api.UsedBy(item_ns, name);
          text = DescribePersistentVolumeClaim(
              *pvc, events, now, FindStatsByClaim(*stats, item_ns, name),
              used_by.ok() ? *used_by : std::vector<std::string>());
          break;
        }
        case Kind::kStorageClass: {
          Result<model::StorageClass> sc = yaml::StorageClassFromJson(item);
          if (!sc.ok()) {
            decode_error = sc.status();
            break;
          }
          text = DescribeStorageClass(*sc, events, now);
          break;
        }
      }
      if (!decode_error.ok()) {
        fetched.errors.push_back(Status::Internal("cannot decode " + name +
                                                  " from claimfsd: " + decode_error.message()));
        continue;
      }
      io.out << (first ? "" : "\n\n") << text;
      first = false;
    }
  }
  io.out << std::flush;
  for (const Status& error : fetched.errors) io.err << ErrorLine(error) << "\n";
  if (found == 0 && fetched.errors.empty()) {
    io.err << NoResourcesLine(resources->kinds, options.all_namespaces, global.namespace_) << "\n";
  }
  return fetched.errors.empty() ? kExitOk : kExitError;
}

int RunDf(const GlobalOptions& global, const DfOptions& options, Io& io) {
  Api api(global);
  Result<std::vector<VolumeStats>> stats = api.Stats();
  if (!stats.ok()) {
    io.err << ErrorLine(stats.status()) << "\n";
    return kExitError;
  }
  std::vector<VolumeStats> shown;
  for (VolumeStats& s : *stats) {
    if (!options.all_namespaces && s.claim.rfind(global.namespace_ + "/", 0) != 0) continue;
    shown.push_back(std::move(s));
  }
  std::stable_sort(shown.begin(), shown.end(),
                   [](const VolumeStats& a, const VolumeStats& b) { return a.claim < b.claim; });
  if (shown.empty()) {
    io.err << (options.all_namespaces
                   ? std::string("No mounted volumes found")
                   : "No mounted volumes found in " + global.namespace_ + " namespace.")
           << "\n";
    return kExitOk;
  }
  io.out << FormatDf(shown, options.bytes) << std::flush;
  return kExitOk;
}

int RunVersion(const GlobalOptions& global, Io& io) {
#ifdef CLAIMCTL_VERSION
  const char* version = CLAIMCTL_VERSION;
#else
  const char* version = "dev";
#endif
  io.out << "Client Version: " << version << "\n";
  Api api(global);
  Result<json> server = api.Get("/version");
  if (server.ok() && server->is_object() && server->contains("gitVersion") &&
      (*server)["gitVersion"].is_string()) {
    io.out << "Server Version: " << (*server)["gitVersion"].get<std::string>() << "\n";
  }
  return kExitOk;
}

}  // namespace claimfs::claimctl
