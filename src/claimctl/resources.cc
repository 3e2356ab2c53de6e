#include "claimctl/resources.h"

#include <algorithm>
#include <cctype>

namespace claimfs::claimctl {
namespace {

constexpr KindInfo kKinds[] = {
    {Kind::kPersistentVolume, "PersistentVolume", "persistentvolumes", "persistentvolume", false},
    {Kind::kPersistentVolumeClaim, "PersistentVolumeClaim", "persistentvolumeclaims",
     "persistentvolumeclaim", true},
    {Kind::kStorageClass, "StorageClass", "storageclasses", "storageclass.storage.k8s.io", false},
};

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string> Split(std::string_view text, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t end = text.find(sep, start);
    parts.emplace_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return parts;
}

constexpr Kind kAllKinds[] = {Kind::kPersistentVolume, Kind::kPersistentVolumeClaim,
                              Kind::kStorageClass};

Status UnknownType(std::string_view type) {
  return Status::Invalid("the server doesn't have a resource type \"" + std::string(type) + "\"");
}

// Appends the kinds `type` ("pv,pvc", "all") names, without repeating one.
Status AddKinds(std::string_view types, std::vector<Kind>* kinds) {
  for (const std::string& type : Split(types, ',')) {
    if (type.empty()) continue;
    std::vector<Kind> add;
    if (Lower(type) == "all") {
      add.assign(std::begin(kAllKinds), std::end(kAllKinds));
    } else if (std::optional<Kind> kind = ParseKind(type)) {
      add.push_back(*kind);
    } else {
      return UnknownType(type);
    }
    for (Kind k : add) {
      if (std::find(kinds->begin(), kinds->end(), k) == kinds->end()) kinds->push_back(k);
    }
  }
  return Status::Ok();
}

}  // namespace

const KindInfo& InfoOf(Kind kind) { return kKinds[static_cast<int>(kind)]; }

std::optional<Kind> ParseKind(std::string_view text) {
  std::string t = Lower(text);
  if (t == "pv" || t == "persistentvolume" || t == "persistentvolumes") {
    return Kind::kPersistentVolume;
  }
  if (t == "pvc" || t == "persistentvolumeclaim" || t == "persistentvolumeclaims") {
    return Kind::kPersistentVolumeClaim;
  }
  if (t == "sc" || t == "storageclass" || t == "storageclasses" ||
      t == "storageclass.storage.k8s.io" || t == "storageclasses.storage.k8s.io") {
    return Kind::kStorageClass;
  }
  return std::nullopt;
}

std::optional<Kind> KindFromName(std::string_view kind_name) {
  for (const KindInfo& info : kKinds) {
    if (kind_name == info.name) return info.kind;
  }
  return std::nullopt;
}

Result<ResourceArgs> ParseResourceArgs(const std::vector<std::string>& args) {
  ResourceArgs out;
  if (args.empty()) {
    return Status::Invalid(
        "you must specify the type of resource to get. Use one of pv, pvc, sc or all, e.g. "
        "`claimctl get pvc`");
  }
  bool slash_form = args[0].find('/') != std::string::npos;
  if (slash_form) {
    for (const std::string& arg : args) {
      size_t slash = arg.find('/');
      if (slash == std::string::npos) {
        return Status::Invalid(
            "there is no need to specify a resource type as a separate argument when passing "
            "arguments in resource/name form (e.g. 'claimctl get resource/<resource_name>' "
            "instead of 'claimctl get resource resource/<resource_name>'");
      }
      std::string type = arg.substr(0, slash);
      std::string name = arg.substr(slash + 1);
      std::optional<Kind> kind = ParseKind(type);
      if (!kind) return UnknownType(type);
      if (name.empty()) {
        return Status::Invalid(
            "arguments in resource/name form must have a single resource and "
            "name");
      }
      if (std::find(out.kinds.begin(), out.kinds.end(), *kind) == out.kinds.end()) {
        out.kinds.push_back(*kind);
      }
      out.objects.push_back({*kind, name});
    }
    return out;
  }
  Status s = AddKinds(args[0], &out.kinds);
  if (!s.ok()) return s;
  if (out.kinds.empty()) return UnknownType(args[0]);
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i].find('/') != std::string::npos) {
      return Status::Invalid(
          "there is no need to specify a resource type as a separate argument when passing "
          "arguments in resource/name form (e.g. 'claimctl get resource/<resource_name>' "
          "instead of 'claimctl get resource resource/<resource_name>'");
    }
    for (Kind kind : out.kinds) out.objects.push_back({kind, args[i]});
  }
  return out;
}

std::string UrlEncode(std::string_view text) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string CollectionPath(Kind kind, std::string_view ns) {
  switch (kind) {
    case Kind::kPersistentVolume:
      return "/api/v1/persistentvolumes";
    case Kind::kPersistentVolumeClaim:
      if (ns.empty()) return "/api/v1/persistentvolumeclaims";
      return "/api/v1/namespaces/" + UrlEncode(ns) + "/persistentvolumeclaims";
    case Kind::kStorageClass:
      return "/apis/storage.k8s.io/v1/storageclasses";
  }
  return "";
}

std::string ObjectPath(Kind kind, std::string_view ns, std::string_view name) {
  return CollectionPath(kind, InfoOf(kind).namespaced ? ns : "") + "/" + UrlEncode(name);
}

std::string ResourceName(Kind kind, std::string_view name) {
  return std::string(InfoOf(kind).singular) + "/" + std::string(name);
}

}  // namespace claimfs::claimctl
