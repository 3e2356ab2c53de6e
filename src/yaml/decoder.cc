#include "decoder.h"

#include <algorithm>
#include <array>
#include <limits>

namespace claimfs::yaml::internal {
namespace {

using model::AccessMode;
using nlohmann::json;

const char* JsonTypeName(const json& j) {
  switch (j.type()) {
    case json::value_t::object:
      return "map";
    case json::value_t::array:
      return "list";
    case json::value_t::string:
      return "string";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return "number";
    case json::value_t::null:
      return "null";
    default:
      return "value";
  }
}

std::vector<std::string> Names(std::initializer_list<const char*> names) {
  return std::vector<std::string>(names.begin(), names.end());
}

// Sorted, as Kubernetes lists supported values.
const std::vector<std::string>& AccessModeNames() {
  static const auto* names = new std::vector<std::string>(
      Names({"ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"}));
  return *names;
}

// Kubernetes volume sources a PersistentVolume may name that claimfs cannot serve.
constexpr std::array<std::string_view, 20> kForeignVolumeSources = {"gcePersistentDisk",
                                                                    "awsElasticBlockStore",
                                                                    "glusterfs",
                                                                    "nfs",
                                                                    "rbd",
                                                                    "iscsi",
                                                                    "cinder",
                                                                    "cephfs",
                                                                    "fc",
                                                                    "flocker",
                                                                    "flexVolume",
                                                                    "azureFile",
                                                                    "vsphereVolume",
                                                                    "quobyte",
                                                                    "azureDisk",
                                                                    "photonPersistentDisk",
                                                                    "portworxVolume",
                                                                    "scaleIO",
                                                                    "storageos",
                                                                    "csi"};

}  // namespace

void Decoder::WrongType(const FieldPath& path, const char* expected, const json& got) {
  // A number's own text, also for one beyond a double that arrived as a string.
  const std::string* raw = raw_number_ ? raw_number_(path.Pointer()) : nullptr;
  if (raw != nullptr) {
    errors_.push_back(TypeError(
        path, std::string("expected ") + expected + ", got number " + raw->substr(0, 80)));
    return;
  }
  std::string detail = std::string("expected ") + expected + ", got " + JsonTypeName(got);
  if (got.is_string() || got.is_number() || got.is_boolean()) {
    std::string shown = got.is_string() ? Quote(got.get_ref<const std::string&>()) : got.dump();
    if (shown.size() > 80) shown = shown.substr(0, 77) + "...";
    detail += " " + shown;
  }
  errors_.push_back(TypeError(path, std::move(detail)));
}

void Decoder::Unknown(const FieldPath& path, const json& value) {
  unknown_.push_back(path);
  if (unknown_root_ == nullptr) return;
  json* cur = unknown_root_;
  for (const auto& seg : path.segments()) {
    if (seg.kind == FieldPath::Segment::Kind::kIndex) {
      if (!cur->is_null() && !cur->is_array()) return;
      if (cur->is_null()) *cur = json::array();
      while (cur->size() <= seg.index) cur->push_back(nullptr);
      cur = &(*cur)[seg.index];
    } else {
      if (!cur->is_null() && !cur->is_object()) return;
      cur = &(*cur)[seg.name];
    }
  }
  *cur = value;
}

bool Decoder::Fields(const json& j, const FieldPath& path, const FieldFn& field) {
  if (j.is_null()) return false;
  if (!j.is_object()) {
    WrongType(path, "map", j);
    return false;
  }
  for (const auto& [key, value] : j.items()) {
    FieldPath child = path.Child(key);
    if (!field(key, value, child)) Unknown(child, value);
  }
  return true;
}

bool Decoder::String(const json& j, const FieldPath& path, std::string* out) {
  if (j.is_null()) return false;
  if (!j.is_string() || (raw_number_ && raw_number_(path.Pointer()) != nullptr)) {
    WrongType(path, "string", j);
    return false;
  }
  *out = j.get<std::string>();
  return true;
}

bool Decoder::String(const json& j, const FieldPath& path, std::optional<std::string>* out) {
  std::string s;
  if (!String(j, path, &s)) return false;
  *out = std::move(s);
  return true;
}

bool Decoder::Bool(const json& j, const FieldPath& path, std::optional<bool>* out) {
  if (j.is_null()) return false;
  if (!j.is_boolean()) {
    WrongType(path, "boolean", j);
    return false;
  }
  *out = j.get<bool>();
  return true;
}

bool Decoder::Int64(const json& j, const FieldPath& path, int64_t* out) {
  if (j.is_null()) return false;
  if (j.is_number_integer() && !j.is_number_unsigned()) {
    *out = j.get<int64_t>();
    return true;
  }
  if (j.is_number_unsigned() &&
      j.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    *out = static_cast<int64_t>(j.get<uint64_t>());
    return true;
  }
  WrongType(path, "integer", j);
  return false;
}

bool Decoder::Quantity(const json& j, const FieldPath& path, std::optional<model::Quantity>* out) {
  if (j.is_null()) return false;
  std::string text;
  if (j.is_string()) {
    text = j.get<std::string>();
  } else if (j.is_number()) {
    const std::string* raw = raw_number_ ? raw_number_(path.Pointer()) : nullptr;
    if (raw != nullptr) {
      text = *raw;
    } else if (j.is_number_float()) {
      text = j.dump();
    } else {
      text = j.is_number_unsigned() ? std::to_string(j.get<uint64_t>())
                                    : std::to_string(j.get<int64_t>());
    }
  } else {
    WrongType(path, "quantity (string or number)", j);
    return false;
  }
  auto q = model::Quantity::Parse(text);
  if (!q.ok()) {
    // The model says `invalid quantity "X": why`; Kubernetes says `Invalid value: "X": why`.
    std::string detail = q.status().message();
    std::string prefix = "invalid quantity \"" + text + "\": ";
    if (detail.compare(0, prefix.size(), prefix) == 0) detail = detail.substr(prefix.size());
    errors_.push_back(InvalidError(path, text, std::move(detail)));
    return false;
  }
  *out = *q;
  return true;
}

bool Decoder::StringList(const json& j, const FieldPath& path, std::vector<std::string>* out) {
  if (j.is_null()) return false;
  if (!j.is_array()) {
    WrongType(path, "list", j);
    return false;
  }
  out->clear();
  for (size_t i = 0; i < j.size(); ++i) {
    std::string s;
    if (String(j[i], path.Index(i), &s)) {
      out->push_back(std::move(s));
    } else if (j[i].is_null()) {
      WrongType(path.Index(i), "string", j[i]);
    }
  }
  return true;
}

bool Decoder::StringMap(const json& j, const FieldPath& path,
                        std::map<std::string, std::string>* out) {
  if (j.is_null()) return false;
  if (!j.is_object()) {
    WrongType(path, "map", j);
    return false;
  }
  out->clear();
  for (const auto& [key, value] : j.items()) {
    std::string s;
    if (String(value, path.Key(key), &s)) {
      (*out)[key] = std::move(s);
    } else if (value.is_null()) {
      WrongType(path.Key(key), "string", value);
    }
  }
  return true;
}

bool Decoder::AccessModes(const json& j, const FieldPath& path, std::vector<AccessMode>* out) {
  std::vector<std::string> names;
  if (!StringList(j, path, &names)) return false;
  out->clear();
  for (size_t i = 0; i < names.size(); ++i) {
    auto mode = model::ParseAccessMode(names[i]);
    if (mode) {
      out->push_back(*mode);
    } else {
      FieldError e = NotSupportedError(path, names[i], AccessModeNames());
      e.location = path.Index(i);
      errors_.push_back(std::move(e));
    }
  }
  return true;
}

namespace {

template <typename T>
bool ParseEnum(const std::string& text, std::optional<T> (*parse)(std::string_view),
               const std::vector<std::string>& supported, const FieldPath& path, ErrorList* errors,
               std::optional<T>* out) {
  auto v = parse(text);
  if (!v) {
    errors->push_back(NotSupportedError(path, text, supported));
    return false;
  }
  *out = *v;
  return true;
}

}  // namespace

void Decoder::Metadata(const json& j, const FieldPath& path, model::ObjectMeta* m) {
  Fields(j, path, [&](const std::string& k, const json& v, const FieldPath& p) {
    if (k == "name") {
      String(v, p, &m->name);
    } else if (k == "namespace") {
      String(v, p, &m->namespace_);
    } else if (k == "uid") {
      String(v, p, &m->uid);
    } else if (k == "resourceVersion") {
      String(v, p, &m->resource_version);
    } else if (k == "generation") {
      Int64(v, p, &m->generation);
    } else if (k == "creationTimestamp") {
      String(v, p, &m->creation_timestamp);
    } else if (k == "deletionTimestamp") {
      String(v, p, &m->deletion_timestamp);
    } else if (k == "labels") {
      StringMap(v, p, &m->labels);
    } else if (k == "annotations") {
      StringMap(v, p, &m->annotations);
    } else if (k == "finalizers") {
      StringList(v, p, &m->finalizers);
    } else {
      return false;
    }
    return true;
  });
}

void Decoder::Reference(const json& j, const FieldPath& path, model::ObjectReference* r) {
  Fields(j, path, [&](const std::string& k, const json& v, const FieldPath& p) {
    if (k == "kind") {
      String(v, p, &r->kind);
    } else if (k == "apiVersion") {
      String(v, p, &r->api_version);
    } else if (k == "namespace") {
      String(v, p, &r->namespace_);
    } else if (k == "name") {
      String(v, p, &r->name);
    } else if (k == "uid") {
      String(v, p, &r->uid);
    } else if (k == "resourceVersion") {
      String(v, p, &r->resource_version);
    } else {
      return false;
    }
    return true;
  });
}

void Decoder::Selector(const json& j, const FieldPath& path, model::LabelSelector* s) {
  using Req = model::LabelSelectorRequirement;
  Fields(j, path, [&](const std::string& k, const json& v, const FieldPath& p) {
    if (k == "matchLabels") {
      StringMap(v, p, &s->match_labels);
      return true;
    }
    if (k != "matchExpressions") return false;
    if (v.is_null()) return true;
    if (!v.is_array()) {
      WrongType(p, "list", v);
      return true;
    }
    for (size_t i = 0; i < v.size(); ++i) {
      Req req;
      FieldPath ip = p.Index(i);
      bool has_operator = false;
      bool is_object =
          Fields(v[i], ip, [&](const std::string& rk, const json& rv, const FieldPath& rp) {
            if (rk == "key") {
              String(rv, rp, &req.key);
            } else if (rk == "operator") {
              std::string op;
              if (String(rv, rp, &op)) {
                has_operator = true;
                auto parsed = model::ParseSelectorOperator(op);
                if (parsed) {
                  req.op = *parsed;
                } else {
                  errors_.push_back(InvalidError(rp, op, "not a valid selector operator"));
                }
              }
            } else if (rk == "values") {
              StringList(rv, rp, &req.values);
            } else {
              return false;
            }
            return true;
          });
      if (!is_object) {
        if (v[i].is_null()) WrongType(ip, "map", v[i]);
        continue;
      }
      if (!has_operator && !v[i].contains("operator")) {
        errors_.push_back(RequiredError(ip.Child("operator")));
      }
      s->match_expressions.push_back(std::move(req));
    }
    return true;
  });
}

void Decoder::StorageResource(const json& j, const FieldPath& path,
                              std::optional<model::Quantity>* out, bool others_are_errors) {
  Fields(j, path, [&](const std::string& k, const json& v, const FieldPath& p) {
    if (k == "storage") {
      Quantity(v, p, out);
      return true;
    }
    if (!others_are_errors) return false;
    FieldError e = NotSupportedError(path, k, {"storage"});
    e.location = p;
    errors_.push_back(std::move(e));
    return true;
  });
}

void Decoder::PersistentVolumeSpec(const json& j, const FieldPath& path,
                                   model::PersistentVolumeSpec* s) {
  Fields(j, path, [&](const std::string& k, const json& v, const FieldPath& p) {
    if (k == "capacity") {
      StorageResource(v, p, &s->capacity, /*others_are_errors=*/true);
    } else if (k == "accessModes") {
      AccessModes(v, p, &s->access_modes);
    } else if (k == "volumeMode") {
      std::string mode;
      if (String(v, p, &mode)) {
        ParseEnum(mode, &model::ParseVolumeMode, Names({"Block", "Filesystem"}), p, &errors_,
                  &s->volume_mode);
      }
    } else if (k == "storageClassName") {
      String(v, p, &s->storage_class_name);
    } else if (k == "persistentVolumeReclaimPolicy") {
      std::string policy;
      if (String(v, p, &policy) && !policy.empty()) {
        ParseEnum(policy, &model::ParseReclaimPolicy, Names({"Delete", "Recycle", "Retain"}), p,
                  &errors_, &s->reclaim_policy);
      }
    } else if (k == "mountOptions") {
      StringList(v, p, &s->mount_options);
    } else if (k == "hostPath") {
      if (v.is_null()) return true;
      model::HostPathVolumeSource hp;
      if (Fields(v, p, [&](const std::string& hk, const json& hv, const FieldPath& hp_path) {
            if (hk == "path") return String(hv, hp_path, &hp.path), true;
            if (hk == "type") return String(hv, hp_path, &hp.type), true;
            return false;
          })) {
        s->host_path = std::move(hp);
      }
    } else if (k == "local") {
      if (v.is_null()) return true;
      model::LocalVolumeSource local;
      if (Fields(v, p, [&](const std::string& lk, const json& lv, const FieldPath& lp) {
            if (lk == "path") return String(lv, lp, &local.path), true;
            return false;
          })) {
        s->local = std::move(local);
      }
    } else if (k == "claimRef") {
      if (v.is_null()) return true;
      model::ObjectReference ref;
      if (v.is_object()) {
        Reference(v, p, &ref);
        s->claim_ref = std::move(ref);
      } else {
        WrongType(p, "map", v);
      }
    } else if (std::find(kForeignVolumeSources.begin(), kForeignVolumeSources.end(), k) !=
               kForeignVolumeSources.end()) {
      if (!v.is_null()) {
        errors_.push_back(
            ForbiddenError(p, "claimfs serves only hostPath and local persistent volumes"));
      }
    } else {
      return false;
    }
    return true;
  });
}

void Decoder::PersistentVolumeClaimSpec(const json& j, const FieldPath& path,
                                        model::PersistentVolumeClaimSpec* s) {
  Fields(j, path, [&](const std::string& k, const json& v, const FieldPath& p) {
    if (k == "accessModes") {
      AccessModes(v, p, &s->access_modes);
    } else if (k == "selector") {
      if (v.is_null()) return true;
      model::LabelSelector selector;
      if (v.is_object()) {
        Selector(v, p, &selector);
        s->selector = std::move(selector);
      } else {
        WrongType(p, "map", v);
      }
    } else if (k == "resources") {
      Fields(v, p, [&](const std::string& rk, const json& rv, const FieldPath& rp) {
        if (rk == "requests") {
          StorageResource(rv, rp, &s->request, /*others_are_errors=*/false);
        } else if (rk == "limits") {
          StorageResource(rv, rp, &s->limit, /*others_are_errors=*/false);
        } else {
          return false;
        }
        return true;
      });
    } else if (k == "volumeName") {
      String(v, p, &s->volume_name);
    } else if (k == "storageClassName") {
      String(v, p, &s->storage_class_name);
    } else if (k == "volumeMode") {
      std::string mode;
      if (String(v, p, &mode)) {
        ParseEnum(mode, &model::ParseVolumeMode, Names({"Block", "Filesystem"}), p, &errors_,
                  &s->volume_mode);
      }
    } else {
      return false;
    }
    return true;
  });
}

bool Decoder::CheckTypeMeta(const json& j, std::string_view api_version, std::string_view kind) {
  if (!j.is_object()) {
    WrongType({}, "map", j);
    return false;
  }
  bool ok = true;
  auto check = [&](const char* field, std::string_view want) {
    FieldPath p = FieldPath().Child(field);
    auto it = j.find(field);
    std::string got;
    if (it == j.end() || it->is_null()) {
      errors_.push_back(RequiredError(p));
      ok = false;
    } else if (!String(*it, p, &got)) {
      ok = false;
    } else if (got != want) {
      errors_.push_back(InvalidError(p, got, "expected " + Quote(want)));
      ok = false;
    }
  };
  check("apiVersion", api_version);
  check("kind", kind);
  return ok;
}

model::StorageClass Decoder::DecodeStorageClass(const json& j) {
  model::StorageClass sc;
  if (!CheckTypeMeta(j, "storage.k8s.io/v1", "StorageClass") && !j.is_object()) return sc;
  unknown_root_ = &sc.unknown_fields;
  Fields(j, {}, [&](const std::string& k, const json& v, const FieldPath& p) {
    if (k == "apiVersion" || k == "kind") {
    } else if (k == "metadata") {
      Metadata(v, p, &sc.metadata);
    } else if (k == "provisioner") {
      String(v, p, &sc.provisioner);
    } else if (k == "parameters") {
      StringMap(v, p, &sc.parameters);
    } else if (k == "reclaimPolicy") {
      std::string policy;
      if (String(v, p, &policy)) {
        // Recycle is a PV policy only: a class refuses it (Kubernetes' validateReclaimPolicy).
        if (policy == "Recycle") {
          errors_.push_back(NotSupportedError(p, policy, Names({"Delete", "Retain"})));
        } else {
          ParseEnum(policy, &model::ParseReclaimPolicy, Names({"Delete", "Retain"}), p, &errors_,
                    &sc.reclaim_policy);
        }
      }
    } else if (k == "allowVolumeExpansion") {
      Bool(v, p, &sc.allow_volume_expansion);
    } else if (k == "mountOptions") {
      StringList(v, p, &sc.mount_options);
    } else if (k == "volumeBindingMode") {
      std::string mode;
      if (String(v, p, &mode)) {
        ParseEnum(mode, &model::ParseVolumeBindingMode,
                  Names({"Immediate", "WaitForFirstConsumer"}), p, &errors_,
                  &sc.volume_binding_mode);
      }
    } else {
      return false;
    }
    return true;
  });
  unknown_root_ = nullptr;
  return sc;
}

model::PersistentVolume Decoder::DecodePersistentVolume(const json& j) {
  model::PersistentVolume pv;
  if (!CheckTypeMeta(j, "v1", "PersistentVolume") && !j.is_object()) return pv;
  unknown_root_ = &pv.unknown_fields;
  Fields(j, {}, [&](const std::string& k, const json& v, const FieldPath& p) {
    if (k == "apiVersion" || k == "kind") {
    } else if (k == "metadata") {
      Metadata(v, p, &pv.metadata);
    } else if (k == "spec") {
      PersistentVolumeSpec(v, p, &pv.spec);
    } else if (k == "status") {
      Fields(v, p, [&](const std::string& sk, const json& sv, const FieldPath& sp) {
        if (sk == "phase") {
          std::string phase;
          if (String(sv, sp, &phase)) {
            std::optional<model::VolumePhase> parsed;
            for (auto ph : {model::VolumePhase::kPending, model::VolumePhase::kAvailable,
                            model::VolumePhase::kBound, model::VolumePhase::kReleased,
                            model::VolumePhase::kFailed}) {
              if (phase == model::ToString(ph)) parsed = ph;
            }
            if (parsed) {
              pv.status.phase = *parsed;
            } else {
              errors_.push_back(NotSupportedError(
                  sp, phase, Names({"Available", "Bound", "Failed", "Pending", "Released"})));
            }
          }
        } else if (sk == "message") {
          String(sv, sp, &pv.status.message);
        } else if (sk == "reason") {
          String(sv, sp, &pv.status.reason);
        } else if (sk == "lastPhaseTransitionTime") {
          String(sv, sp, &pv.status.last_phase_transition_time);
        } else {
          return false;
        }
        return true;
      });
    } else {
      return false;
    }
    return true;
  });
  unknown_root_ = nullptr;
  return pv;
}

model::PersistentVolumeClaim Decoder::DecodePersistentVolumeClaim(const json& j) {
  model::PersistentVolumeClaim pvc;
  if (!CheckTypeMeta(j, "v1", "PersistentVolumeClaim") && !j.is_object()) return pvc;
  unknown_root_ = &pvc.unknown_fields;
  Fields(j, {}, [&](const std::string& k, const json& v, const FieldPath& p) {
    if (k == "apiVersion" || k == "kind") {
    } else if (k == "metadata") {
      Metadata(v, p, &pvc.metadata);
    } else if (k == "spec") {
      PersistentVolumeClaimSpec(v, p, &pvc.spec);
    } else if (k == "status") {
      auto& st = pvc.status;
      Fields(v, p, [&](const std::string& sk, const json& sv, const FieldPath& sp) {
        if (sk == "phase") {
          std::string phase;
          if (String(sv, sp, &phase)) {
            if (phase == "Pending") {
              st.phase = model::ClaimPhase::kPending;
            } else if (phase == "Bound") {
              st.phase = model::ClaimPhase::kBound;
            } else if (phase == "Lost") {
              st.phase = model::ClaimPhase::kLost;
            } else {
              errors_.push_back(NotSupportedError(sp, phase, Names({"Bound", "Lost", "Pending"})));
            }
          }
        } else if (sk == "accessModes") {
          AccessModes(sv, sp, &st.access_modes);
        } else if (sk == "capacity") {
          StorageResource(sv, sp, &st.capacity, /*others_are_errors=*/false);
        } else if (sk == "conditions") {
          if (sv.is_null()) return true;
          if (!sv.is_array()) {
            WrongType(sp, "list", sv);
            return true;
          }
          for (size_t i = 0; i < sv.size(); ++i) {
            model::PersistentVolumeClaimCondition c;
            bool is_object =
                Fields(sv[i], sp.Index(i),
                       [&](const std::string& ck, const json& cv, const FieldPath& cp) {
                         if (ck == "type") return String(cv, cp, &c.type), true;
                         if (ck == "status") return String(cv, cp, &c.status), true;
                         if (ck == "reason") return String(cv, cp, &c.reason), true;
                         if (ck == "message") return String(cv, cp, &c.message), true;
                         if (ck == "lastTransitionTime")
                           return String(cv, cp, &c.last_transition_time), true;
                         return false;
                       });
            if (is_object) {
              st.conditions.push_back(std::move(c));
            } else if (sv[i].is_null()) {
              WrongType(sp.Index(i), "map", sv[i]);
            }
          }
        } else {
          return false;
        }
        return true;
      });
    } else {
      return false;
    }
    return true;
  });
  unknown_root_ = nullptr;
  return pvc;
}

model::Event Decoder::DecodeEvent(const json& j) {
  model::Event ev;
  if (!CheckTypeMeta(j, "v1", "Event") && !j.is_object()) return ev;
  Fields(j, {}, [&](const std::string& k, const json& v, const FieldPath& p) {
    if (k == "apiVersion" || k == "kind") {
    } else if (k == "metadata") {
      Metadata(v, p, &ev.metadata);
    } else if (k == "involvedObject") {
      Reference(v, p, &ev.involved_object);
    } else if (k == "reason") {
      String(v, p, &ev.reason);
    } else if (k == "message") {
      String(v, p, &ev.message);
    } else if (k == "type") {
      String(v, p, &ev.type);
    } else if (k == "source") {
      Fields(v, p, [&](const std::string& sk, const json& sv, const FieldPath& sp) {
        if (sk == "component") return String(sv, sp, &ev.source_component), true;
        return false;
      });
    } else if (k == "count") {
      int64_t count = 0;
      if (Int64(v, p, &count)) {
        if (count < std::numeric_limits<int32_t>::min() ||
            count > std::numeric_limits<int32_t>::max()) {
          errors_.push_back(InvalidRawError(p, std::to_string(count), "must fit in 32 bits"));
        } else {
          ev.count = static_cast<int32_t>(count);
        }
      }
    } else if (k == "firstTimestamp") {
      String(v, p, &ev.first_timestamp);
    } else if (k == "lastTimestamp") {
      String(v, p, &ev.last_timestamp);
    } else {
      return false;
    }
    return true;
  });
  return ev;
}

std::optional<yaml::Object> Decoder::DecodeObject(const json& j) {
  if (!j.is_object()) {
    WrongType({}, "map", j);
    return std::nullopt;
  }
  std::string api_version;
  std::string kind;
  FieldPath av_path = FieldPath().Child("apiVersion");
  FieldPath kind_path = FieldPath().Child("kind");
  bool have_av = j.contains("apiVersion") && String(j["apiVersion"], av_path, &api_version);
  bool have_kind = j.contains("kind") && String(j["kind"], kind_path, &kind);
  size_t errors_before = errors_.size();
  if (!have_av && (!j.contains("apiVersion") || j["apiVersion"].is_null())) {
    errors_.push_back(RequiredError(av_path));
  }
  if (!have_kind && (!j.contains("kind") || j["kind"].is_null())) {
    errors_.push_back(RequiredError(kind_path));
  }
  if (!have_av || !have_kind || errors_.size() != errors_before) return std::nullopt;

  struct Known {
    std::string_view kind;
    std::string_view api_version;
  };
  static constexpr Known kKnown[] = {{"PersistentVolume", "v1"},
                                     {"PersistentVolumeClaim", "v1"},
                                     {"StorageClass", "storage.k8s.io/v1"}};
  const Known* match = nullptr;
  for (const Known& k : kKnown) {
    if (k.kind == kind) match = &k;
  }
  std::string no_match = "no matches for kind " + Quote(kind) + " in version " + Quote(api_version);
  if (match == nullptr) {
    errors_.push_back(InvalidError(
        kind_path, kind,
        no_match + " (claimfs serves PersistentVolume, PersistentVolumeClaim and StorageClass)"));
    return std::nullopt;
  }
  if (match->api_version != api_version) {
    errors_.push_back(InvalidError(
        av_path, api_version,
        no_match + " (" + std::string(kind) + " is " + std::string(match->api_version) + ")"));
    return std::nullopt;
  }
  if (kind == "PersistentVolume") return yaml::Object(DecodePersistentVolume(j));
  if (kind == "PersistentVolumeClaim") return yaml::Object(DecodePersistentVolumeClaim(j));
  return yaml::Object(DecodeStorageClass(j));
}

void MergeUnknown(json* encoded, const json& unknown) {
  if (unknown.is_object() && encoded->is_object()) {
    for (const auto& [key, value] : unknown.items()) {
      auto it = encoded->find(key);
      if (it == encoded->end()) {
        (*encoded)[key] = value;
      } else {
        MergeUnknown(&*it, value);
      }
    }
  } else if (unknown.is_array() && encoded->is_array()) {
    for (size_t i = 0; i < unknown.size() && i < encoded->size(); ++i) {
      if (!unknown[i].is_null()) MergeUnknown(&(*encoded)[i], unknown[i]);
    }
  }
}

}  // namespace claimfs::yaml::internal
