#include "handlers.h"

#include <algorithm>
#include <ctime>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "authz.h"
#include "claimfs/common/log.h"
#include "claimfs/model/selector.h"
#include "claimfs/yaml/codec.h"
#include "claimfs/yaml/defaults.h"
#include "claimfs/yaml/manifest.h"
#include "claimfs/yaml/validation.h"
#include "identity.h"
#include "kube_api.h"
#include "selectors.h"

namespace claimfs::api::internal {

using nlohmann::json;

namespace {

// How often an unconditional write (no resourceVersion from the client) is retried when the
// controller wrote the object between our read and our write.
constexpr int kMaxAttempts = 5;
// Deeper bodies are refused before parsing: nothing claimfs keeps nests this far, and encoding
// a deeply nested value recurses.
constexpr size_t kMaxJsonDepth = 128;

// ---- kinds

template <typename T>
struct Traits;

template <>
struct Traits<model::StorageClass> {
  static constexpr store::Kind kKind = store::Kind::kStorageClass;
  static constexpr const char* kKindName = "StorageClass";
  static constexpr const char* kApiVersion = "storage.k8s.io/v1";
  static constexpr const char* kGroup = "storage.k8s.io";
  static constexpr const char* kResource = "storageclasses";
  static constexpr bool kNamespaced = false;
  static constexpr bool kHasStatus = false;
  static constexpr bool kSerializeAdmission = false;
  static yaml::ErrorList ValidateCreate(const Context&, const model::StorageClass& sc) {
    return yaml::ValidateStorageClass(sc);
  }
  static yaml::ErrorList ValidateUpdate(const Context&, const model::StorageClass& old_sc,
                                        const model::StorageClass& new_sc) {
    return yaml::ValidateStorageClassUpdate(old_sc, new_sc);
  }
  static const std::vector<model::StorageClass>& Items(const store::Snapshot& snapshot) {
    return snapshot.storage_classes;
  }
};

template <>
struct Traits<model::PersistentVolume> {
  static constexpr store::Kind kKind = store::Kind::kPersistentVolume;
  static constexpr const char* kKindName = "PersistentVolume";
  static constexpr const char* kApiVersion = "v1";
  static constexpr const char* kGroup = "";
  static constexpr const char* kResource = "persistentvolumes";
  static constexpr bool kNamespaced = false;
  static constexpr bool kHasStatus = true;
  // Beyond Kubernetes' rules: the directory must be one the daemon may serve (below a pool or
  // an allowed hostPath prefix, reached without symlinks) and no other volume's (one directory,
  // one volume). The source cannot change later.
  static constexpr bool kSerializeAdmission = true;
  static yaml::ErrorList ValidateCreate(const Context& context, const model::PersistentVolume& pv) {
    yaml::ErrorList errors = yaml::ValidatePersistentVolume(pv);
    if (!errors.empty()) return errors;
    auto check = [&](const char* source, const std::string& path) {
      Status allowed = context.hooks->CheckVolumeSource(path);
      if (allowed.ok()) allowed = context.hooks->CheckVolumeOverlap(pv.metadata.name, path);
      if (allowed.ok()) return;
      yaml::FieldPath field = yaml::FieldPath().Child("spec").Child(source).Child("path");
      errors.push_back(yaml::ForbiddenError(field, allowed.message()));
    };
    if (pv.spec.host_path) check("hostPath", pv.spec.host_path->path);
    if (pv.spec.local) check("local", pv.spec.local->path);
    return errors;
  }
  static yaml::ErrorList ValidateUpdate(const Context&, const model::PersistentVolume& old_pv,
                                        const model::PersistentVolume& new_pv) {
    return yaml::ValidatePersistentVolumeUpdate(old_pv, new_pv);
  }
  static const std::vector<model::PersistentVolume>& Items(const store::Snapshot& snapshot) {
    return snapshot.volumes;
  }
};

template <>
struct Traits<model::PersistentVolumeClaim> {
  static constexpr store::Kind kKind = store::Kind::kPersistentVolumeClaim;
  static constexpr const char* kKindName = "PersistentVolumeClaim";
  static constexpr const char* kApiVersion = "v1";
  static constexpr const char* kGroup = "";
  static constexpr const char* kResource = "persistentvolumeclaims";
  static constexpr bool kNamespaced = true;
  static constexpr bool kHasStatus = true;
  static constexpr bool kSerializeAdmission = false;
  static yaml::ErrorList ValidateCreate(const Context&, const model::PersistentVolumeClaim& pvc) {
    return yaml::ValidatePersistentVolumeClaim(pvc);
  }
  static yaml::ErrorList ValidateUpdate(const Context& context,
                                        const model::PersistentVolumeClaim& old_pvc,
                                        const model::PersistentVolumeClaim& new_pvc) {
    // Classes looked up stay alive (map nodes are stable) until validation returns.
    std::map<std::string, std::optional<model::StorageClass>> classes;
    yaml::StorageClassLookup lookup = [&](const std::string& name) -> const model::StorageClass* {
      auto it = classes.find(name);
      if (it == classes.end()) {
        Result<model::StorageClass> found = context.store->GetStorageClass(name);
        it = classes.emplace(name, found.ok() ? std::optional(*found) : std::nullopt).first;
      }
      return it->second ? &*it->second : nullptr;
    };
    return yaml::ValidatePersistentVolumeClaimUpdate(old_pvc, new_pvc, lookup);
  }
  static const std::vector<model::PersistentVolumeClaim>& Items(const store::Snapshot& snapshot) {
    return snapshot.claims;
  }
};

template <typename T>
StatusDetails Details(const std::string& name) {
  return StatusDetails{name, Traits<T>::kGroup, Traits<T>::kResource, {}};
}

http::Response Ok(int code, const json& body) { return http::Response::Json(code, body); }

// Kubernetes' verb for a request's method.
std::string Verb(const http::Request& request) {
  if (request.method == "POST") return "create";
  if (request.method == "PUT") return "update";
  if (request.method == "PATCH") return "patch";
  if (request.method == "DELETE") return "delete";
  return "get";
}

// A tenant's write of `stored` (nullptr on create), `next` what it would write (nullptr on
// delete); see authz.h. nullopt when allowed.
template <typename T>
std::optional<http::Response> Authorize(const Context& context, const http::Request& request,
                                        const T* stored, T* next) {
  auto resolved = Tenant(request);
  if (auto* error = std::get_if<http::Response>(&resolved)) return std::move(*error);
  const std::optional<Caller>& tenant = std::get<std::optional<Caller>>(resolved);
  if (!tenant) return std::nullopt;
  std::string verb = Verb(request);
  if constexpr (std::is_same_v<T, model::StorageClass>) {
    const std::string& name = stored ? stored->metadata.name : next->metadata.name;
    return CannotDo(*tenant, verb, Traits<T>::kResource, Traits<T>::kGroup, name, "",
                    "only root may write storage classes");
  } else if constexpr (std::is_same_v<T, model::PersistentVolumeClaim>) {
    if (!stored) return std::nullopt;  // a new claim is the caller's (ApplyClaimOwner)
    return CheckClaimWrite(*tenant, verb, *stored);
  } else {
    if (!stored) return CheckVolumeCreate(*tenant, context.store, next);
    return CheckVolumeWrite(*tenant, verb, context.store, *stored, next);
  }
}

template <typename T>
http::Response InvalidResponse(const std::string& name, const yaml::ErrorList& errors) {
  Status status = yaml::InvalidStatus(Traits<T>::kKindName, name, errors);
  return Failure(422, status.message(),
                 StatusDetails{name, Traits<T>::kGroup, Traits<T>::kKindName, errors});
}

std::string StringField(const json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string MetadataName(const json& body) {
  auto it = body.find("metadata");
  return it == body.end() ? "" : StringField(*it, "name");
}

// Fills kind and apiVersion from the path when the body leaves them out; refuses a body of
// another kind.
template <typename T>
std::optional<http::Response> CheckTypeMeta(json* body) {
  using Tr = Traits<T>;
  if (!body->is_object()) {
    return Failure(400,
                   std::string("the request body must be a JSON object, not ") + body->type_name());
  }
  for (auto [key, expected] :
       {std::pair{"kind", Tr::kKindName}, std::pair{"apiVersion", Tr::kApiVersion}}) {
    json::iterator it = body->find(key);
    if (it == body->end() || it->is_null() || (it->is_string() && it->get<std::string>().empty())) {
      (*body)[key] = expected;
      continue;
    }
    if (!it->is_string() || it->get<std::string>() != expected) {
      std::string kind = StringField(*body, "kind");
      std::string version = StringField(*body, "apiVersion");
      return Failure(400, (kind.empty() ? std::string("the object") : kind) + " in version \"" +
                              version + "\" cannot be handled as a " + Tr::kKindName +
                              ": this path serves " + Tr::kApiVersion + " " + Tr::kKindName);
    }
  }
  auto metadata = body->find("metadata");
  if (metadata == body->end() || metadata->is_null()) (*body)["metadata"] = json::object();
  return std::nullopt;
}

// The body's namespace against the path's: empty takes the path's, another one is refused.
// Cluster-scoped kinds drop any namespace, as Kubernetes does.
template <typename T>
std::optional<http::Response> CheckNamespace(json* body, const http::PathParams& params) {
  json& metadata = (*body)["metadata"];
  if (!metadata.is_object()) return std::nullopt;  // the decoder reports it
  if constexpr (!Traits<T>::kNamespaced) {
    metadata.erase("namespace");
    return std::nullopt;
  } else {
    const std::string& path_namespace = params.at("namespace");
    auto it = metadata.find("namespace");
    if (it == metadata.end() || it->is_null() ||
        (it->is_string() && it->get<std::string>().empty())) {
      metadata["namespace"] = path_namespace;
    } else if (!it->is_string() || it->get<std::string>() != path_namespace) {
      return Failure(400,
                     "the namespace of the provided object does not match the namespace sent on "
                     "the request");
    }
    return std::nullopt;
  }
}

std::optional<http::Response> CheckName(json* body, const std::string& path_name) {
  json& metadata = (*body)["metadata"];
  if (!metadata.is_object()) return std::nullopt;
  auto it = metadata.find("name");
  if (it == metadata.end() || it->is_null() ||
      (it->is_string() && it->get<std::string>().empty())) {
    metadata["name"] = path_name;
  } else if (!it->is_string() || it->get<std::string>() != path_name) {
    return Failure(400, "the name of the object (" +
                            (it->is_string() ? it->get<std::string>() : it->dump()) +
                            ") does not match the name on the URL (" + path_name + ")");
  }
  return std::nullopt;
}

// Decodes a checked body. Wrong JSON types make a 400 (the body cannot be read as the kind),
// values the kind does not allow a 422, as the API server answers.
template <typename T>
std::variant<T, http::Response> Decode(const json& body,
                                       const yaml::NumberTexts* numbers = nullptr) {
  using Tr = Traits<T>;
  yaml::DecodeReport report;
  std::optional<yaml::Object> object = yaml::DecodeObject(body, &report, numbers);
  std::string name = MetadataName(body);
  if (!report.errors.empty()) {
    bool type_error = std::any_of(report.errors.begin(), report.errors.end(), [](const auto& e) {
      return e.type == yaml::ErrorType::kTypeInvalid;
    });
    if (type_error) {
      return Failure(400,
                     std::string(Tr::kKindName) + " in version \"" + Tr::kApiVersion +
                         "\" cannot be handled as a " + Tr::kKindName + ": " +
                         yaml::JoinErrors(report.errors),
                     StatusDetails{name, Tr::kGroup, Tr::kKindName, report.errors});
    }
    return InvalidResponse<T>(name, report.errors);
  }
  if (!object || !std::holds_alternative<T>(*object)) {
    return Failure(400, std::string("the request body cannot be handled as a ") + Tr::kKindName);
  }
  return std::get<T>(std::move(*object));
}

// ---- handlers

template <typename T>
http::Response GetObject(const Context& context, const http::PathParams& params) {
  const std::string& name = params.at("name");
  std::string namespace_ = Traits<T>::kNamespaced ? params.at("namespace") : "";
  Result<store::Object> got = context.store->Get(Traits<T>::kKind, namespace_, name);
  if (!got.ok()) return Failure(got.status(), Details<T>(name));
  return Ok(200, yaml::ToJson(std::get<T>(*got)));
}

template <typename T>
http::Response ListObjects(const Context& context, const http::Request& request,
                           const std::string& namespace_) {
  using Tr = Traits<T>;
  Result<model::LabelSelector> labels = ParseLabelSelector(request.Query("labelSelector"));
  if (!labels.ok()) return Failure(400, labels.status().message());
  Result<std::vector<FieldRequirement>> fields = ParseFieldSelector(request.Query("fieldSelector"));
  if (!fields.ok()) return Failure(400, fields.status().message());
  for (const FieldRequirement& field : *fields) {
    if (field.field != "metadata.name" && field.field != "metadata.namespace") {
      return Failure(400, "field label not supported: " + field.field);
    }
  }
  Result<store::Snapshot> snapshot = context.store->ReadSnapshot();
  if (!snapshot.ok()) return Failure(snapshot.status());
  json items = json::array();
  for (const T& object : Tr::Items(*snapshot)) {
    if (!namespace_.empty() && object.metadata.namespace_ != namespace_) continue;
    if (!model::Matches(*labels, object.metadata.labels)) continue;
    if (!MatchesFields(*fields, {{"metadata.name", object.metadata.name},
                                 {"metadata.namespace", object.metadata.namespace_}})) {
      continue;
    }
    items.push_back(yaml::ToJson(object));
  }
  return Ok(200, json{{"kind", std::string(Tr::kKindName) + "List"},
                      {"apiVersion", Tr::kApiVersion},
                      {"metadata", {{"resourceVersion", snapshot->resource_version}}},
                      {"items", std::move(items)}});
}

template <typename T>
http::Response CreateObject(const Context& context, const http::Request& request,
                            const http::PathParams& params) {
  using Tr = Traits<T>;
  auto dry_run = DryRun(request);
  if (auto* error = std::get_if<http::Response>(&dry_run)) return std::move(*error);
  yaml::NumberTexts numbers;
  auto parsed = ParseBody(request, &numbers);
  if (auto* error = std::get_if<http::Response>(&parsed)) return std::move(*error);
  json body = std::get<json>(std::move(parsed));
  if (auto error = CheckTypeMeta<T>(&body)) return std::move(*error);
  if (auto error = CheckNamespace<T>(&body, params)) return std::move(*error);
  auto decoded = Decode<T>(body, &numbers);
  if (auto* error = std::get_if<http::Response>(&decoded)) return std::move(*error);
  T object = std::get<T>(std::move(decoded));
  yaml::SetDefaults(&object);
  // What a client may not choose on create (the store sets uid, timestamps and versions).
  object.metadata.deletion_timestamp.reset();
  if constexpr (Tr::kHasStatus) object.status = {};
  if constexpr (std::is_same_v<T, model::PersistentVolumeClaim>) {
    auto caller = ResolveCaller(request);
    if (auto* error = std::get_if<http::Response>(&caller)) return std::move(*error);
    auto refused = ApplyClaimOwner(std::get<std::optional<Caller>>(caller), nullptr, &object);
    if (refused) return std::move(*refused);
  }
  std::unique_lock<std::mutex> admission;
  if constexpr (Tr::kSerializeAdmission) {
    admission = std::unique_lock(context.volume_admission_mu);
  }
  yaml::ErrorList errors = Tr::ValidateCreate(context, object);
  if (!errors.empty()) return InvalidResponse<T>(object.metadata.name, errors);
  if (auto refused = Authorize<T>(context, request, nullptr, &object)) return std::move(*refused);
  if (std::get<bool>(dry_run)) {
    object.metadata.creation_timestamp = NowRfc3339();
    object.metadata.generation = 1;
    object.metadata.resource_version.clear();
    object.metadata.uid.clear();
    return Ok(201, yaml::ToJson(object));
  }
  Result<T> created = context.store->Create(std::move(object));
  if (!created.ok()) return Failure(created.status(), Details<T>(MetadataName(body)));
  context.hooks->ObjectsChanged();
  return Ok(201, yaml::ToJson(*created));
}

// Gives the object to write from the stored one, or the response that refuses.
template <typename T>
using Mutation = std::function<std::variant<T, http::Response>(const T& stored)>;

// The update path shared by PUT and PATCH: what a client may not change is taken from the stored
// object, the update is validated against it, and written. An unconditional write (the client
// named no resourceVersion) is retried when another writer got in between.
template <typename T>
http::Response UpdateObject(const Context& context, const http::Request& request,
                            const http::PathParams& params, bool status_only, bool dry_run,
                            bool conditional, const Mutation<T>& mutate) {
  using Tr = Traits<T>;
  const std::string& name = params.at("name");
  std::string namespace_ = Tr::kNamespaced ? params.at("namespace") : "";
  for (int attempt = 1;; ++attempt) {
    Result<store::Object> got = context.store->Get(Tr::kKind, namespace_, name);
    if (!got.ok()) return Failure(got.status(), Details<T>(name));
    const T& stored = std::get<T>(*got);
    auto mutated = mutate(stored);
    if (auto* error = std::get_if<http::Response>(&mutated)) return std::move(*error);
    T next = std::get<T>(std::move(mutated));
    if (!conditional || next.metadata.resource_version.empty()) {
      next.metadata.resource_version = stored.metadata.resource_version;
    }
    if constexpr (Tr::kHasStatus) {
      if (status_only) {
        T merged = stored;
        merged.status = std::move(next.status);
        merged.metadata.resource_version = next.metadata.resource_version;
        next = std::move(merged);
      } else {
        next.status = stored.status;
      }
    }
    if (next.metadata.uid.empty()) next.metadata.uid = stored.metadata.uid;
    next.metadata.creation_timestamp = stored.metadata.creation_timestamp;
    next.metadata.generation = stored.metadata.generation;
    next.metadata.deletion_timestamp = stored.metadata.deletion_timestamp;

    if constexpr (std::is_same_v<T, model::PersistentVolumeClaim>) {
      auto caller = ResolveCaller(request);
      if (auto* error = std::get_if<http::Response>(&caller)) return std::move(*error);
      auto refused = ApplyClaimOwner(std::get<std::optional<Caller>>(caller), &stored, &next);
      if (refused) return std::move(*refused);
    }
    if (auto refused = Authorize<T>(context, request, &stored, &next)) return std::move(*refused);
    yaml::ErrorList errors = Tr::ValidateUpdate(context, stored, next);
    if (!errors.empty()) return InvalidResponse<T>(name, errors);
    if (dry_run) return Ok(200, yaml::ToJson(next));

    // A terminating object whose last finalizer goes is deleted, as the API server does.
    bool finish = next.metadata.deletion_timestamp && next.metadata.finalizers.empty();
    Status status;
    json answer;
    if (finish) {
      status = context.store->Delete(Tr::kKind, namespace_, name, next.metadata.resource_version);
      answer = yaml::ToJson(next);
    } else {
      Result<T> updated = context.store->Update(std::move(next));
      status = updated.status();
      if (updated.ok()) answer = yaml::ToJson(*updated);
    }
    if (status.code() == StatusCode::kConflict && !conditional && attempt < kMaxAttempts) {
      continue;
    }
    if (!status.ok()) return Failure(status, Details<T>(name));
    context.hooks->ObjectsChanged();
    return Ok(200, answer);
  }
}

template <typename T>
http::Response ReplaceObject(const Context& context, const http::Request& request,
                             const http::PathParams& params, bool status_only) {
  auto dry_run = DryRun(request);
  if (auto* error = std::get_if<http::Response>(&dry_run)) return std::move(*error);
  yaml::NumberTexts numbers;
  auto parsed = ParseBody(request, &numbers);
  if (auto* error = std::get_if<http::Response>(&parsed)) return std::move(*error);
  json body = std::get<json>(std::move(parsed));
  if (auto error = CheckTypeMeta<T>(&body)) return std::move(*error);
  if (auto error = CheckNamespace<T>(&body, params)) return std::move(*error);
  if (auto error = CheckName(&body, params.at("name"))) return std::move(*error);
  bool conditional = !StringField(body["metadata"], "resourceVersion").empty();
  auto decoded = Decode<T>(body, &numbers);
  if (auto* error = std::get_if<http::Response>(&decoded)) return std::move(*error);
  T incoming = std::get<T>(std::move(decoded));
  yaml::SetDefaults(&incoming);
  return UpdateObject<T>(context, request, params, status_only, std::get<bool>(dry_run),
                         conditional,
                         [&](const T&) -> std::variant<T, http::Response> { return incoming; });
}

// "[json.exception.parse_error.101] parse error at ..." -> "parse error at ...".
std::string WithoutExceptionId(const std::string& what) {
  if (!what.empty() && what.front() == '[') {
    size_t end = what.find("] ");
    if (end != std::string::npos) return what.substr(end + 2);
  }
  return what;
}

template <typename T>
http::Response PatchObject(const Context& context, const http::Request& request,
                           const http::PathParams& params, bool status_only) {
  using Tr = Traits<T>;
  auto dry_run = DryRun(request);
  if (auto* error = std::get_if<http::Response>(&dry_run)) return std::move(*error);
  std::string media = request.MediaType();
  bool json_patch = media == "application/json-patch+json";
  if (!json_patch && media != "application/merge-patch+json" &&
      media != "application/strategic-merge-patch+json") {
    return Failure(415,
                   "the body of the request was in an unknown format - accepted media types "
                   "include: application/json-patch+json, application/merge-patch+json, "
                   "application/strategic-merge-patch+json");
  }
  yaml::NumberTexts numbers;
  auto parsed = ParseBody(request, &numbers);
  if (auto* error = std::get_if<http::Response>(&parsed)) return std::move(*error);
  json patch = std::get<json>(std::move(parsed));
  bool conditional = false;
  if (json_patch) {
    if (!patch.is_array()) {
      return Failure(400, "a JSON patch must be an array of operations, not " +
                              std::string(patch.type_name()));
    }
    for (const json& op : patch) {
      if (StringField(op, "path") == "/metadata/resourceVersion") conditional = true;
    }
  } else {
    if (!patch.is_object()) {
      return Failure(400,
                     "a merge patch must be a JSON object, not " + std::string(patch.type_name()));
    }
    auto metadata = patch.find("metadata");
    conditional = metadata != patch.end() && !StringField(*metadata, "resourceVersion").empty();
  }
  const std::string& name = params.at("name");
  Mutation<T> mutate = [&](const T& stored) -> std::variant<T, http::Response> {
    json document = yaml::ToJson(stored);
    try {
      if (json_patch) {
        document = document.patch(patch);
      } else if (media == "application/strategic-merge-patch+json") {
        ApplyStrategicMergePatch(&document, patch);
      } else {
        document.merge_patch(patch);
      }
    } catch (const json::parse_error& e) {
      return Failure(400, "invalid JSON patch: " + WithoutExceptionId(e.what()));
    } catch (const json::exception& e) {
      return Failure(422,
                     "the patch cannot be applied to " + std::string(Tr::kResource) + " \"" + name +
                         "\": " + WithoutExceptionId(e.what()),
                     Details<T>(name));
    }
    if (!document.is_object() || StringField(document, "kind") != Tr::kKindName ||
        StringField(document, "apiVersion") != Tr::kApiVersion) {
      return Failure(400, std::string("the patch may not change kind or apiVersion of ") +
                              Tr::kResource + " \"" + name + "\"");
    }
    // A merge patch puts its numbers at the same pointers in the document; a JSON patch's
    // numbers sit in its operations.
    auto decoded = Decode<T>(document, json_patch ? nullptr : &numbers);
    if (auto* error = std::get_if<http::Response>(&decoded)) return std::move(*error);
    T object = std::get<T>(std::move(decoded));
    yaml::SetDefaults(&object);
    return object;
  };
  return UpdateObject<T>(context, request, params, status_only, std::get<bool>(dry_run),
                         conditional,
                         mutate);
}

template <typename T>
http::Response DeleteObject(const Context& context, const http::Request& request,
                            const http::PathParams& params) {
  using Tr = Traits<T>;
  auto dry_run = DryRun(request);
  if (auto* error = std::get_if<http::Response>(&dry_run)) return std::move(*error);
  // DeleteOptions' preconditions, when a body brings them.
  std::string want_uid, want_version;
  if (!request.body.empty()) {
    auto parsed = ParseBody(request);
    if (auto* error = std::get_if<http::Response>(&parsed)) return std::move(*error);
    const json& options = std::get<json>(parsed);
    if (options.is_object() && options.contains("preconditions")) {
      want_uid = StringField(options["preconditions"], "uid");
      want_version = StringField(options["preconditions"], "resourceVersion");
    }
  }
  const std::string& name = params.at("name");
  std::string namespace_ = Tr::kNamespaced ? params.at("namespace") : "";
  for (int attempt = 1;; ++attempt) {
    Result<store::Object> got = context.store->Get(Tr::kKind, namespace_, name);
    if (!got.ok()) return Failure(got.status(), Details<T>(name));
    const T& stored = std::get<T>(*got);
    if (!want_uid.empty() && want_uid != stored.metadata.uid) {
      return Failure(409,
                     "Precondition failed: UID in precondition: " + want_uid +
                         ", UID in object meta: " + stored.metadata.uid,
                     Details<T>(name));
    }
    if (!want_version.empty() && want_version != stored.metadata.resource_version) {
      return Failure(409,
                     "Precondition failed: ResourceVersion in precondition: " + want_version +
                         ", ResourceVersion in meta: " + stored.metadata.resource_version,
                     Details<T>(name));
    }
    if (auto refused = Authorize<T>(context, request, &stored, nullptr)) {
      return std::move(*refused);
    }
    if (stored.metadata.deletion_timestamp) return Ok(200, yaml::ToJson(stored));
    Status status;
    json answer;
    if (!stored.metadata.finalizers.empty()) {
      // Finalizers hold the object: mark it terminating; whoever owns them finishes the delete.
      T next = stored;
      next.metadata.deletion_timestamp = NowRfc3339();
      if (std::get<bool>(dry_run)) return Ok(200, yaml::ToJson(next));
      Result<T> updated = context.store->Update(std::move(next));
      status = updated.status();
      if (updated.ok()) answer = yaml::ToJson(*updated);
    } else {
      if (std::get<bool>(dry_run)) return Ok(200, yaml::ToJson(stored));
      answer = yaml::ToJson(stored);
      status = context.store->Delete(Tr::kKind, namespace_, name, stored.metadata.resource_version);
    }
    if (status.code() == StatusCode::kConflict && want_version.empty() && attempt < kMaxAttempts) {
      continue;
    }
    if (!status.ok()) return Failure(status, Details<T>(name));
    context.hooks->ObjectsChanged();
    return Ok(200, answer);
  }
}

// Registers one kind's routes under `collection` (a pattern, e.g.
// /api/v1/namespaces/{namespace}/persistentvolumeclaims).
template <typename T>
void AddKind(http::Router* router, const Context* context, const std::string& collection) {
  const Context& c = *context;
  std::string item = collection + "/{name}";
  router->Add("GET", collection,
              [&c](const http::Request& request, const http::PathParams& params) {
                auto it = params.find("namespace");
                return ListObjects<T>(c, request, it == params.end() ? "" : it->second);
              });
  router->Add("POST", collection,
              [&c](const http::Request& request, const http::PathParams& params) {
                return CreateObject<T>(c, request, params);
              });
  router->Add("GET", item, [&c](const http::Request&, const http::PathParams& params) {
    return GetObject<T>(c, params);
  });
  router->Add("PUT", item, [&c](const http::Request& request, const http::PathParams& params) {
    return ReplaceObject<T>(c, request, params, false);
  });
  router->Add("PATCH", item, [&c](const http::Request& request, const http::PathParams& params) {
    return PatchObject<T>(c, request, params, false);
  });
  router->Add("DELETE", item, [&c](const http::Request& request, const http::PathParams& params) {
    return DeleteObject<T>(c, request, params);
  });
  if constexpr (Traits<T>::kHasStatus) {
    std::string status = item + "/status";
    router->Add("GET", status, [&c](const http::Request&, const http::PathParams& params) {
      return GetObject<T>(c, params);
    });
    router->Add("PUT", status, [&c](const http::Request& request, const http::PathParams& params) {
      return ReplaceObject<T>(c, request, params, true);
    });
    router->Add("PATCH", status,
                [&c](const http::Request& request, const http::PathParams& params) {
                  return PatchObject<T>(c, request, params, true);
                });
  }
}

size_t JsonDepth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

http::Response ListEventsHandler(const Context& context, const http::Request& request,
                                 const std::string& namespace_) {
  static const char* const kFields[] = {"involvedObject.kind",
                                        "involvedObject.namespace",
                                        "involvedObject.name",
                                        "involvedObject.uid",
                                        "involvedObject.apiVersion",
                                        "involvedObject.resourceVersion",
                                        "reason",
                                        "type",
                                        "source",
                                        "metadata.name",
                                        "metadata.namespace"};
  Result<std::vector<FieldRequirement>> fields = ParseFieldSelector(request.Query("fieldSelector"));
  if (!fields.ok()) return Failure(400, fields.status().message());
  Result<model::LabelSelector> labels = ParseLabelSelector(request.Query("labelSelector"));
  if (!labels.ok()) return Failure(400, labels.status().message());
  std::map<std::string, std::string> wanted;  // equality requirements
  for (const FieldRequirement& field : *fields) {
    if (std::find_if(std::begin(kFields), std::end(kFields), [&](const char* known) {
          return field.field == known;
        }) == std::end(kFields)) {
      return Failure(400, "field label not supported: " + field.field);
    }
    if (field.equals) wanted.emplace(field.field, field.value);
  }
  // One object's events come from the store's index; anything else is filtered here.
  Result<std::vector<model::Event>> events = [&]() -> Result<std::vector<model::Event>> {
    auto kind = wanted.find("involvedObject.kind");
    auto name = wanted.find("involvedObject.name");
    auto ns = wanted.find("involvedObject.namespace");
    if (kind != wanted.end() && name != wanted.end()) {
      model::ObjectReference ref;
      ref.kind = kind->second;
      ref.name = name->second;
      bool known_namespace = true;
      if (ns != wanted.end()) {
        ref.namespace_ = ns->second;
      } else if (kind->second == "PersistentVolumeClaim" && !namespace_.empty()) {
        ref.namespace_ = namespace_;
      } else if (kind->second == "PersistentVolume" || kind->second == "StorageClass") {
        ref.namespace_ = "";
      } else {
        known_namespace = false;
      }
      auto uid = wanted.find("involvedObject.uid");
      if (uid != wanted.end()) ref.uid = uid->second;
      if (known_namespace) return context.store->ListEvents(ref);
    }
    return context.store->ListAllEvents(namespace_);
  }();
  if (!events.ok()) return Failure(events.status());
  Result<std::string> version = context.store->ResourceVersion();
  if (!version.ok()) return Failure(version.status());
  json items = json::array();
  for (const model::Event& event : *events) {
    if (!namespace_.empty() && event.metadata.namespace_ != namespace_) continue;
    if (!model::Matches(*labels, event.metadata.labels)) continue;
    const model::ObjectReference& ref = event.involved_object;
    if (!MatchesFields(*fields, {{"involvedObject.kind", ref.kind},
                                 {"involvedObject.namespace", ref.namespace_},
                                 {"involvedObject.name", ref.name},
                                 {"involvedObject.uid", ref.uid},
                                 {"involvedObject.apiVersion", ref.api_version},
                                 {"involvedObject.resourceVersion", ref.resource_version},
                                 {"reason", event.reason},
                                 {"type", event.type},
                                 {"source", event.source_component},
                                 {"metadata.name", event.metadata.name},
                                 {"metadata.namespace", event.metadata.namespace_}})) {
      continue;
    }
    items.push_back(yaml::ToJson(event));
  }
  return Ok(200, json{{"kind", "EventList"},
                      {"apiVersion", "v1"},
                      {"metadata", {{"resourceVersion", *version}}},
                      {"items", std::move(items)}});
}

}  // namespace

http::Response Failure(int http_code, std::string_view message, const StatusDetails& details) {
  return http::Response::Json(
      http_code, FailureObject(http_code, ReasonForHttpCode(http_code), message, details));
}

http::Response Failure(const Status& status, const StatusDetails& details) {
  if (status.code() == StatusCode::kIOError || status.code() == StatusCode::kInternal) {
    log::Error("api: {}", status.message());
  }
  return http::Response::Json(HttpCode(status.code()), FailureObject(status, details));
}

std::variant<json, http::Response> ParseBody(const http::Request& request,
                                             yaml::NumberTexts* numbers) {
  std::string media = request.MediaType();
  if (media == "application/yaml" || media == "application/x-yaml" || media == "text/yaml") {
    yaml::ParseOptions options;
    options.set_defaults = false;
    options.validate = false;
    yaml::ManifestSet set = yaml::ParseManifests(request.body, "request body", options);
    if (!set.ok()) return Failure(400, set.status().message());
    if (set.objects.size() != 1) {
      return Failure(400, "the request body must hold exactly one object, not " +
                              std::to_string(set.objects.size()));
    }
    return yaml::ToJson(set.objects.front().object);
  }
  bool is_json = media.empty() || media == "application/json" ||
                 media == "application/x-www-form-urlencoded" ||  // curl -d's default
                 (media.size() > 5 && media.compare(media.size() - 5, 5, "+json") == 0);
  if (!is_json) {
    return Failure(415,
                   "the body of the request was in an unknown format - accepted media types "
                   "include: application/json, application/yaml");
  }
  if (request.body.find_first_not_of(" \t\r\n") == std::string::npos) {
    return Failure(400, "the request body is empty");
  }
  if (JsonDepth(request.body) > kMaxJsonDepth) {
    return Failure(
        400, "the request body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  yaml::NumberTexts ignored;
  Result<json> parsed =
      yaml::ParseJsonKeepingNumbers(request.body, numbers != nullptr ? numbers : &ignored);
  if (!parsed.ok()) {
    return Failure(400, "the request body is not valid JSON: " + parsed.status().message());
  }
  return std::move(*parsed);
}

std::variant<bool, http::Response> DryRun(const http::Request& request) {
  std::string value = request.Query("dryRun");
  if (value.empty()) return false;
  if (value == "All") return true;
  return Failure(
      400, "dryRun: Unsupported value: " + yaml::Quote(value) + ": supported values: \"All\"");
}

std::string NowRfc3339() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

void AddObjectRoutes(http::Router* router, const Context* context) {
  AddKind<model::PersistentVolume>(router, context, "/api/v1/persistentvolumes");
  AddKind<model::PersistentVolumeClaim>(router, context,
                                        "/api/v1/namespaces/{namespace}/persistentvolumeclaims");
  AddKind<model::StorageClass>(router, context, "/apis/storage.k8s.io/v1/storageclasses");
  const Context& c = *context;
  router->Add("GET", "/api/v1/persistentvolumeclaims",
              [&c](const http::Request& request, const http::PathParams&) {
                return ListObjects<model::PersistentVolumeClaim>(c, request, "");
              });
}

void AddEventRoutes(http::Router* router, const Context* context) {
  const Context& c = *context;
  router->Add("GET", "/api/v1/events", [&c](const http::Request& request, const http::PathParams&) {
    return ListEventsHandler(c, request, "");
  });
  router->Add("GET", "/api/v1/namespaces/{namespace}/events",
              [&c](const http::Request& request, const http::PathParams& params) {
                return ListEventsHandler(c, request, params.at("namespace"));
              });
}

}  // namespace claimfs::api::internal
