#include "claimfs/yaml/validation.h"

#include <algorithm>
#include <cctype>

#include "claimfs/model/host_path.h"

namespace claimfs::yaml {
namespace {

using model::AccessMode;
using model::ReclaimPolicy;

constexpr size_t kDNS1123LabelMaxLength = 63;
constexpr size_t kDNS1123SubdomainMaxLength = 253;
constexpr size_t kQualifiedNameMaxLength = 63;
constexpr size_t kLabelValueMaxLength = 63;
constexpr size_t kTotalAnnotationSizeLimit = 256 * 1024;
constexpr size_t kMaxProvisionerParameters = 512;
constexpr size_t kMaxProvisionerParameterSize = 256 * 1024;

constexpr char kDNS1123LabelError[] =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
constexpr char kDNS1123SubdomainError[] =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
constexpr char kQualifiedNameError[] =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
constexpr char kLabelValueError[] =
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value', "
    " or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// [a-z0-9]([-a-z0-9]*[a-z0-9])?
bool IsLabelPart(std::string_view s) {
  if (s.empty() || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsLowerAlnum(c) && c != '-') return false;
  }
  return true;
}

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]
bool IsQualifiedNamePart(std::string_view s) {
  if (s.empty() || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

FieldError At(FieldError e, FieldPath location) {
  e.location = std::move(location);
  return e;
}

void ValidateLabelMap(const std::map<std::string, std::string>& labels, const FieldPath& path,
                      ErrorList* errs) {
  for (const auto& [key, value] : labels) {
    for (const auto& msg : IsQualifiedName(key)) {
      errs->push_back(At(InvalidError(path, key, msg), path.Key(key)));
    }
    for (const auto& msg : IsValidLabelValue(value)) {
      errs->push_back(At(InvalidError(path, value, msg), path.Key(key)));
    }
  }
}

void ValidateMeta(const model::ObjectMeta& m, bool namespaced, ErrorList* errs) {
  FieldPath path = FieldPath().Child("metadata");
  FieldPath name = path.Child("name");
  if (m.name.empty()) {
    errs->push_back(RequiredError(name, "name or generateName is required"));
  } else {
    for (const auto& msg : IsDNS1123Subdomain(m.name)) {
      errs->push_back(InvalidError(name, m.name, msg));
    }
  }
  FieldPath ns = path.Child("namespace");
  if (namespaced) {
    if (m.namespace_.empty()) {
      errs->push_back(RequiredError(ns));
    } else {
      for (const auto& msg : IsDNS1123Label(m.namespace_)) {
        errs->push_back(InvalidError(ns, m.namespace_, msg));
      }
    }
  } else if (!m.namespace_.empty()) {
    errs->push_back(ForbiddenError(ns, "not allowed on this type"));
  }
  if (m.generation < 0) {
    errs->push_back(InvalidRawError(path.Child("generation"), std::to_string(m.generation),
                                    "must be greater than or equal to 0"));
  }
  ValidateLabelMap(m.labels, path.Child("labels"), errs);

  FieldPath annotations = path.Child("annotations");
  size_t total = 0;
  for (const auto& [key, value] : m.annotations) {
    for (const auto& msg : IsQualifiedName(Lower(key))) {
      errs->push_back(At(InvalidError(annotations, key, msg), annotations.Key(key)));
    }
    total += key.size() + value.size();
  }
  if (total > kTotalAnnotationSizeLimit) {
    errs->push_back(TooLongError(
        annotations, "must have at most " + std::to_string(kTotalAnnotationSizeLimit) + " bytes"));
  }

  FieldPath finalizers = path.Child("finalizers");
  for (size_t i = 0; i < m.finalizers.size(); ++i) {
    const std::string& f = m.finalizers[i];
    auto msgs = IsQualifiedName(f);
    for (const auto& msg : msgs) {
      errs->push_back(At(InvalidError(finalizers, f, msg), finalizers.Index(i)));
    }
    if (msgs.empty() && f.find('/') == std::string::npos && f != "kubernetes" && f != "orphan" &&
        f != "foregroundDeletion") {
      errs->push_back(At(InvalidError(finalizers, f,
                                      "name is neither a standard finalizer name nor is it "
                                      "fully qualified"),
                         finalizers.Index(i)));
    }
  }
}

void ValidateAccessModes(const std::vector<AccessMode>& modes, const FieldPath& path,
                         std::string required_detail, ErrorList* errs) {
  if (modes.empty()) errs->push_back(RequiredError(path, std::move(required_detail)));
  bool rwop = false;
  bool other = false;
  for (auto m : modes) (m == AccessMode::kReadWriteOncePod ? rwop : other) = true;
  if (rwop && other) {
    errs->push_back(ForbiddenError(path, "may not use ReadWriteOncePod with other access modes"));
  }
}

void ValidateClassName(const std::string& name, const FieldPath& path, ErrorList* errs) {
  for (const auto& msg : IsDNS1123Subdomain(name)) {
    errs->push_back(InvalidError(path, name, msg));
  }
}

// The byte and shape check of a path a volume serves (model::HostPathProblem), reported before
// anything else looks at the path: a NUL would make every later check compare a longer string
// than the kernel sees. False when the path is refused.
bool ValidateHostPath(const std::string& value, const FieldPath& path, ErrorList* errs) {
  if (value.empty()) {
    errs->push_back(RequiredError(path));
    return false;
  }
  if (auto problem = model::HostPathProblem(value)) {
    errs->push_back(InvalidError(path, value, *problem));
    return false;
  }
  return true;
}

// path.Clean(p) == "/": an absolute path made only of "", "." and ".." segments.
bool IsRoot(std::string_view path) {
  if (path.empty() || path[0] != '/') return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view seg = path.substr(start, end - start);
    if (!seg.empty() && seg != "." && seg != "..") return false;
    start = end + 1;
  }
  return true;
}

void ValidateSelector(const model::LabelSelector& sel, const FieldPath& path, ErrorList* errs) {
  using Op = model::LabelSelectorRequirement::Operator;
  ValidateLabelMap(sel.match_labels, path.Child("matchLabels"), errs);
  FieldPath exprs = path.Child("matchExpressions");
  for (size_t i = 0; i < sel.match_expressions.size(); ++i) {
    const auto& r = sel.match_expressions[i];
    FieldPath p = exprs.Index(i);
    switch (r.op) {
      case Op::kIn:
      case Op::kNotIn:
        if (r.values.empty()) {
          errs->push_back(RequiredError(p.Child("values"),
                                        "must be specified when `operator` is 'In' or 'NotIn'"));
        }
        break;
      case Op::kExists:
      case Op::kDoesNotExist:
        if (!r.values.empty()) {
          errs->push_back(
              ForbiddenError(p.Child("values"),
                             "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"));
        }
        break;
    }
    for (const auto& msg : IsQualifiedName(r.key)) {
      errs->push_back(InvalidError(p.Child("key"), r.key, msg));
    }
    for (size_t j = 0; j < r.values.size(); ++j) {
      for (const auto& msg : IsValidLabelValue(r.values[j])) {
        errs->push_back(InvalidError(p.Child("values").Index(j), r.values[j], msg));
      }
    }
  }
}

void ValidateMetaUpdate(const model::ObjectMeta& old_meta, const model::ObjectMeta& new_meta,
                        ErrorList* errs) {
  FieldPath path = FieldPath().Child("metadata");
  if (old_meta.name != new_meta.name) {
    errs->push_back(InvalidError(path.Child("name"), new_meta.name, "field is immutable"));
  }
  if (old_meta.namespace_ != new_meta.namespace_) {
    errs->push_back(
        InvalidError(path.Child("namespace"), new_meta.namespace_, "field is immutable"));
  }
}

nlohmann::json SpecJson(const model::PersistentVolumeClaim& pvc,
                        const model::PersistentVolumeClaimSpec& spec) {
  model::PersistentVolumeClaim copy;
  copy.spec = spec;
  copy.unknown_fields = nlohmann::json::object();
  if (pvc.unknown_fields.is_object() && pvc.unknown_fields.contains("spec")) {
    copy.unknown_fields["spec"] = pvc.unknown_fields["spec"];
  }
  return ToJson(copy)["spec"];
}

}  // namespace

std::vector<std::string> IsDNS1123Label(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > kDNS1123LabelMaxLength) {
    errs.push_back("must be no more than " + std::to_string(kDNS1123LabelMaxLength) +
                   " characters");
  }
  if (!IsLabelPart(value)) errs.push_back(kDNS1123LabelError);
  return errs;
}

std::vector<std::string> IsDNS1123Subdomain(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > kDNS1123SubdomainMaxLength) {
    errs.push_back("must be no more than " + std::to_string(kDNS1123SubdomainMaxLength) +
                   " characters");
  }
  bool ok = !value.empty();
  size_t start = 0;
  while (ok && start <= value.size()) {
    size_t end = value.find('.', start);
    if (end == std::string_view::npos) end = value.size();
    ok = IsLabelPart(value.substr(start, end - start));
    start = end + 1;
  }
  if (!ok) errs.push_back(kDNS1123SubdomainError);
  return errs;
}

std::vector<std::string> IsQualifiedName(std::string_view value) {
  std::vector<std::string> errs;
  std::string_view name = value;
  size_t slash = value.find('/');
  if (slash != std::string_view::npos) {
    if (value.find('/', slash + 1) != std::string_view::npos) {
      errs.push_back(std::string("a qualified name ") + kQualifiedNameError +
                     " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')");
      return errs;
    }
    std::string_view prefix = value.substr(0, slash);
    name = value.substr(slash + 1);
    if (prefix.empty()) {
      errs.push_back("prefix part must be non-empty");
    } else {
      for (const auto& msg : IsDNS1123Subdomain(prefix)) errs.push_back("prefix part " + msg);
    }
  }
  if (name.empty()) {
    errs.push_back("name part must be non-empty");
  } else if (name.size() > kQualifiedNameMaxLength) {
    errs.push_back("name part must be no more than " + std::to_string(kQualifiedNameMaxLength) +
                   " characters");
  }
  if (!name.empty() && !IsQualifiedNamePart(name)) {
    errs.push_back(std::string("name part ") + kQualifiedNameError);
  }
  return errs;
}

std::vector<std::string> IsValidLabelValue(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > kLabelValueMaxLength) {
    errs.push_back("must be no more than " + std::to_string(kLabelValueMaxLength) + " characters");
  }
  if (!value.empty() && !IsQualifiedNamePart(value)) errs.push_back(kLabelValueError);
  return errs;
}

ErrorList ValidateStorageClass(const model::StorageClass& sc) {
  ErrorList errs;
  ValidateMeta(sc.metadata, /*namespaced=*/false, &errs);
  FieldPath provisioner = FieldPath().Child("provisioner");
  if (sc.provisioner.empty()) {
    errs.push_back(RequiredError(provisioner));
  } else {
    for (const auto& msg : IsQualifiedName(Lower(sc.provisioner))) {
      errs.push_back(InvalidError(provisioner, sc.provisioner, msg));
    }
  }
  FieldPath parameters = FieldPath().Child("parameters");
  size_t total = 0;
  for (const auto& [key, value] : sc.parameters) {
    if (key.empty()) {
      errs.push_back(
          At(InvalidError(parameters, key, "field can not be empty."), parameters.Key(key)));
    }
    total += key.size() + value.size();
  }
  if (sc.parameters.size() > kMaxProvisionerParameters) {
    errs.push_back(
        TooManyError(parameters, std::to_string(sc.parameters.size()) + ": must have at most " +
                                     std::to_string(kMaxProvisionerParameters) + " items"));
  }
  if (total > kMaxProvisionerParameterSize) {
    errs.push_back(TooLongError(
        parameters,
        "must have at most " + std::to_string(kMaxProvisionerParameterSize) + " bytes"));
  }
  FieldPath reclaim = FieldPath().Child("reclaimPolicy");
  if (sc.reclaim_policy && *sc.reclaim_policy == ReclaimPolicy::kRecycle) {
    errs.push_back(NotSupportedError(reclaim, "Recycle", {"Delete", "Retain"}));
  }
  if (!sc.volume_binding_mode) {
    errs.push_back(RequiredError(FieldPath().Child("volumeBindingMode")));
  }
  return errs;
}

ErrorList ValidatePersistentVolume(const model::PersistentVolume& pv) {
  ErrorList errs;
  ErrorList path_errs;  // reported first: see ValidateHostPath
  ValidateMeta(pv.metadata, /*namespaced=*/false, &errs);
  const auto& s = pv.spec;
  FieldPath spec = FieldPath().Child("spec");
  ValidateAccessModes(s.access_modes, spec.Child("accessModes"), "", &errs);

  FieldPath capacity = spec.Child("capacity");
  if (!s.capacity) {
    errs.push_back(RequiredError(capacity));
  } else if (s.capacity->value() <= 0) {
    errs.push_back(At(
        InvalidError(capacity.Key("storage"), s.capacity->ToString(), "must be greater than zero"),
        capacity.Child("storage")));
  }

  int sources = 0;
  if (s.host_path) {
    ++sources;
    FieldPath hp = spec.Child("hostPath");
    ValidateHostPath(s.host_path->path, hp.Child("path"), &path_errs);
    static const std::vector<std::string> kTypes = {
        "",     "BlockDevice",  "CharDevice", "Directory", "DirectoryOrCreate",
        "File", "FileOrCreate", "Socket"};
    if (s.host_path->type &&
        std::find(kTypes.begin(), kTypes.end(), *s.host_path->type) == kTypes.end()) {
      errs.push_back(NotSupportedError(hp.Child("type"), *s.host_path->type, kTypes));
    }
  }
  if (s.local) {
    FieldPath local = spec.Child("local");
    if (sources > 0) {
      errs.push_back(ForbiddenError(local, "may not specify more than 1 volume type"));
    } else {
      ++sources;
      ValidateHostPath(s.local->path, local.Child("path"), &path_errs);
    }
  }
  if (sources == 0) errs.push_back(RequiredError(spec, "must specify a volume type"));

  if (s.host_path && IsRoot(s.host_path->path) && s.reclaim_policy == ReclaimPolicy::kRecycle) {
    errs.push_back(ForbiddenError(spec.Child("persistentVolumeReclaimPolicy"),
                                  "may not be 'recycle' for a hostPath mount of '/'"));
  }
  if (!s.storage_class_name.empty()) {
    ValidateClassName(s.storage_class_name, spec.Child("storageClassName"), &errs);
  }
  if (s.claim_ref) {
    FieldPath ref = spec.Child("claimRef");
    if (s.claim_ref->name.empty()) errs.push_back(RequiredError(ref.Child("name")));
    if (s.claim_ref->namespace_.empty()) errs.push_back(RequiredError(ref.Child("namespace")));
    if (!s.claim_ref->kind.empty() && s.claim_ref->kind != "PersistentVolumeClaim") {
      errs.push_back(
          NotSupportedError(ref.Child("kind"), s.claim_ref->kind, {"PersistentVolumeClaim"}));
    }
  }
  path_errs.insert(path_errs.end(), errs.begin(), errs.end());
  return path_errs;
}

ErrorList ValidatePersistentVolumeClaim(const model::PersistentVolumeClaim& pvc) {
  ErrorList errs;
  ValidateMeta(pvc.metadata, /*namespaced=*/true, &errs);
  const auto& s = pvc.spec;
  FieldPath spec = FieldPath().Child("spec");
  ValidateAccessModes(s.access_modes, spec.Child("accessModes"),
                      "at least 1 access mode is required", &errs);
  if (s.selector) ValidateSelector(*s.selector, spec.Child("selector"), &errs);

  FieldPath storage = spec.Child("resources").Key("storage");
  FieldPath written = spec.Child("resources").Child("requests").Child("storage");
  if (!s.request) {
    errs.push_back(At(RequiredError(storage), written));
  } else if (s.request->value() <= 0) {
    errs.push_back(
        At(InvalidError(storage, s.request->ToString(), "must be greater than zero"), written));
  }
  if (s.storage_class_name && !s.storage_class_name->empty()) {
    ValidateClassName(*s.storage_class_name, spec.Child("storageClassName"), &errs);
  }
  return errs;
}

ErrorList Validate(const Object& object) {
  struct Visitor {
    ErrorList operator()(const model::StorageClass& o) { return ValidateStorageClass(o); }
    ErrorList operator()(const model::PersistentVolume& o) { return ValidatePersistentVolume(o); }
    ErrorList operator()(const model::PersistentVolumeClaim& o) {
      return ValidatePersistentVolumeClaim(o);
    }
  };
  return std::visit(Visitor{}, object);
}

ErrorList ValidateStorageClassUpdate(const model::StorageClass& old_sc,
                                     const model::StorageClass& new_sc) {
  ErrorList errs;
  ValidateMetaUpdate(old_sc.metadata, new_sc.metadata, &errs);
  ErrorList create = ValidateStorageClass(new_sc);
  errs.insert(errs.end(), create.begin(), create.end());
  if (old_sc.parameters != new_sc.parameters) {
    errs.push_back(
        ForbiddenError(FieldPath().Child("parameters"), "updates to parameters are forbidden."));
  }
  if (old_sc.provisioner != new_sc.provisioner) {
    errs.push_back(
        ForbiddenError(FieldPath().Child("provisioner"), "updates to provisioner are forbidden."));
  }
  if (old_sc.reclaim_policy != new_sc.reclaim_policy) {
    errs.push_back(ForbiddenError(FieldPath().Child("reclaimPolicy"),
                                  "updates to reclaimPolicy are forbidden."));
  }
  if (old_sc.volume_binding_mode != new_sc.volume_binding_mode) {
    errs.push_back(
        InvalidError(FieldPath().Child("volumeBindingMode"),
                     new_sc.volume_binding_mode ? model::ToString(*new_sc.volume_binding_mode) : "",
                     "field is immutable"));
  }
  return errs;
}

ErrorList ValidatePersistentVolumeUpdate(const model::PersistentVolume& old_pv,
                                         const model::PersistentVolume& new_pv) {
  ErrorList errs;
  ValidateMetaUpdate(old_pv.metadata, new_pv.metadata, &errs);
  ErrorList create = ValidatePersistentVolume(new_pv);
  errs.insert(errs.end(), create.begin(), create.end());
  auto source = [](const model::PersistentVolume& pv) {
    nlohmann::json j = ToJson(pv)["spec"];
    return nlohmann::json{{"hostPath", j.value("hostPath", nlohmann::json())},
                          {"local", j.value("local", nlohmann::json())}};
  };
  if (source(old_pv) != source(new_pv)) {
    errs.push_back(ForbiddenError(FieldPath().Child("spec").Child("persistentvolumesource"),
                                  "spec.persistentvolumesource is immutable after creation"));
  }
  if (old_pv.spec.volume_mode != new_pv.spec.volume_mode) {
    errs.push_back(
        At(InvalidError(FieldPath().Child("volumeMode"),
                        new_pv.spec.volume_mode ? model::ToString(*new_pv.spec.volume_mode) : "",
                        "field is immutable"),
           FieldPath().Child("spec").Child("volumeMode")));
  }
  // A bound volume's quota is live and holds its claim's data: it grows (the controller raises
  // the mount and the claim's status with it), never shrinks, as claims do not.
  int64_t old_size = old_pv.spec.capacity ? old_pv.spec.capacity->value() : 0;
  int64_t new_size = new_pv.spec.capacity ? new_pv.spec.capacity->value() : 0;
  if (old_pv.status.phase == model::VolumePhase::kBound && new_size < old_size) {
    errs.push_back(
        ForbiddenError(FieldPath().Child("spec").Child("capacity").Child("storage"),
                       "field can not be less than previous value while the volume is bound"));
  }
  return errs;
}

ErrorList ValidatePersistentVolumeClaimUpdate(const model::PersistentVolumeClaim& old_pvc,
                                              const model::PersistentVolumeClaim& new_pvc,
                                              const StorageClassLookup& classes) {
  ErrorList errs;
  ValidateMetaUpdate(old_pvc.metadata, new_pvc.metadata, &errs);
  ErrorList create = ValidatePersistentVolumeClaim(new_pvc);
  errs.insert(errs.end(), create.begin(), create.end());

  model::PersistentVolumeClaimSpec old_spec = old_pvc.spec;
  model::PersistentVolumeClaimSpec new_spec = new_pvc.spec;
  // The controller sets volumeName once, and fills in a missing class with the default one.
  if (old_spec.volume_name.empty()) old_spec.volume_name = new_spec.volume_name;
  if (!old_spec.storage_class_name && new_spec.storage_class_name) {
    old_spec.storage_class_name = new_spec.storage_class_name;
  }
  bool bound = new_pvc.status.phase == model::ClaimPhase::kBound ||
               old_pvc.status.phase == model::ClaimPhase::kBound;
  if (bound) new_spec.request = old_spec.request;
  bool spec_changed = SpecJson(old_pvc, old_spec) != SpecJson(new_pvc, new_spec);
  if (spec_changed) {
    errs.push_back(ForbiddenError(FieldPath().Child("spec"),
                                  "spec is immutable after creation except resources.requests "
                                  "and volumeAttributesClassName for bound claims"));
  }

  FieldPath storage =
      FieldPath().Child("spec").Child("resources").Child("requests").Child("storage");
  int64_t old_size = old_pvc.spec.request ? old_pvc.spec.request->value() : 0;
  int64_t new_size = new_pvc.spec.request ? new_pvc.spec.request->value() : 0;
  if (new_size < old_size) {
    errs.push_back(ForbiddenError(storage, "field can not be less than previous value"));
  } else if (new_size > old_size && bound && !spec_changed) {
    std::string class_name = old_pvc.spec.storage_class_name.value_or("");
    const model::StorageClass* sc = classes ? classes(class_name) : nullptr;
    if (sc == nullptr || !sc->allow_volume_expansion.value_or(false)) {
      errs.push_back(ForbiddenError(storage,
                                    "only dynamically provisioned pvc can be resized and the "
                                    "storageclass that provisions the pvc must support resize"));
    }
  }
  if (old_pvc.spec.volume_mode != new_pvc.spec.volume_mode) {
    errs.push_back(
        At(InvalidError(FieldPath().Child("volumeMode"),
                        new_pvc.spec.volume_mode ? model::ToString(*new_pvc.spec.volume_mode) : "",
                        "field is immutable"),
           FieldPath().Child("spec").Child("volumeMode")));
  }
  return errs;
}

Status InvalidStatus(std::string_view kind, std::string_view name, const ErrorList& errors) {
  if (errors.empty()) return Status::Ok();
  return Status::Invalid(std::string(kind) + " " + Quote(name) +
                         " is invalid: " + JoinErrors(errors));
}

}  // namespace claimfs::yaml
