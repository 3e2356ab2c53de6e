#include "claimfs/yaml/codec.h"

#include "decoder.h"

namespace claimfs::yaml {
namespace {

using nlohmann::json;

json AccessModesJson(const std::vector<model::AccessMode>& modes) {
  json out = json::array();
  for (auto m : modes) out.push_back(model::ToString(m));
  return out;
}

json MetaJson(const model::ObjectMeta& m) {
  json out = json::object();
  if (!m.name.empty()) out["name"] = m.name;
  if (!m.namespace_.empty()) out["namespace"] = m.namespace_;
  if (!m.uid.empty()) out["uid"] = m.uid;
  if (!m.resource_version.empty()) out["resourceVersion"] = m.resource_version;
  if (m.generation != 0) out["generation"] = m.generation;
  if (!m.creation_timestamp.empty()) out["creationTimestamp"] = m.creation_timestamp;
  if (m.deletion_timestamp) out["deletionTimestamp"] = *m.deletion_timestamp;
  if (!m.labels.empty()) out["labels"] = m.labels;
  if (!m.annotations.empty()) out["annotations"] = m.annotations;
  if (!m.finalizers.empty()) out["finalizers"] = m.finalizers;
  return out;
}

json ReferenceJson(const model::ObjectReference& r) {
  json out = json::object();
  if (!r.kind.empty()) out["kind"] = r.kind;
  if (!r.api_version.empty()) out["apiVersion"] = r.api_version;
  if (!r.namespace_.empty()) out["namespace"] = r.namespace_;
  if (!r.name.empty()) out["name"] = r.name;
  if (!r.uid.empty()) out["uid"] = r.uid;
  if (!r.resource_version.empty()) out["resourceVersion"] = r.resource_version;
  return out;
}

json Storage(const model::Quantity& q) { return json{{"storage", q.ToString()}}; }

template <typename T>
Result<T> Finish(T value, internal::Decoder& decoder, std::string_view kind) {
  if (!decoder.errors().empty()) {
    return Status::Invalid("cannot decode " + std::string(kind) + ": " +
                           JoinErrors(decoder.errors()));
  }
  return value;
}

}  // namespace

json ToJson(const model::StorageClass& sc) {
  json out = {{"apiVersion", "storage.k8s.io/v1"},
              {"kind", "StorageClass"},
              {"metadata", MetaJson(sc.metadata)}};
  if (!sc.provisioner.empty()) out["provisioner"] = sc.provisioner;
  if (!sc.parameters.empty()) out["parameters"] = sc.parameters;
  if (sc.reclaim_policy) out["reclaimPolicy"] = model::ToString(*sc.reclaim_policy);
  if (sc.allow_volume_expansion) out["allowVolumeExpansion"] = *sc.allow_volume_expansion;
  if (!sc.mount_options.empty()) out["mountOptions"] = sc.mount_options;
  if (sc.volume_binding_mode) out["volumeBindingMode"] = model::ToString(*sc.volume_binding_mode);
  internal::MergeUnknown(&out, sc.unknown_fields);
  return out;
}

json ToJson(const model::PersistentVolume& pv) {
  const auto& s = pv.spec;
  json spec = json::object();
  if (s.capacity) spec["capacity"] = Storage(*s.capacity);
  if (!s.access_modes.empty()) spec["accessModes"] = AccessModesJson(s.access_modes);
  if (s.volume_mode) spec["volumeMode"] = model::ToString(*s.volume_mode);
  if (!s.storage_class_name.empty()) spec["storageClassName"] = s.storage_class_name;
  if (s.reclaim_policy) spec["persistentVolumeReclaimPolicy"] = model::ToString(*s.reclaim_policy);
  if (!s.mount_options.empty()) spec["mountOptions"] = s.mount_options;
  if (s.host_path) {
    json hp = {{"path", s.host_path->path}};
    if (s.host_path->type) hp["type"] = *s.host_path->type;
    spec["hostPath"] = std::move(hp);
  }
  if (s.local) spec["local"] = {{"path", s.local->path}};
  if (s.claim_ref) spec["claimRef"] = ReferenceJson(*s.claim_ref);

  json status = {{"phase", model::ToString(pv.status.phase)}};
  if (!pv.status.message.empty()) status["message"] = pv.status.message;
  if (!pv.status.reason.empty()) status["reason"] = pv.status.reason;
  if (pv.status.last_phase_transition_time) {
    status["lastPhaseTransitionTime"] = *pv.status.last_phase_transition_time;
  }
  json out = {{"apiVersion", "v1"},
              {"kind", "PersistentVolume"},
              {"metadata", MetaJson(pv.metadata)},
              {"spec", std::move(spec)},
              {"status", std::move(status)}};
  internal::MergeUnknown(&out, pv.unknown_fields);
  return out;
}

json ToJson(const model::PersistentVolumeClaim& pvc) {
  const auto& s = pvc.spec;
  json spec = json::object();
  if (!s.access_modes.empty()) spec["accessModes"] = AccessModesJson(s.access_modes);
  if (s.selector) {
    json sel = json::object();
    if (!s.selector->match_labels.empty()) sel["matchLabels"] = s.selector->match_labels;
    if (!s.selector->match_expressions.empty()) {
      json exprs = json::array();
      for (const auto& r : s.selector->match_expressions) {
        json e = {{"key", r.key}, {"operator", model::ToString(r.op)}};
        if (!r.values.empty()) e["values"] = r.values;
        exprs.push_back(std::move(e));
      }
      sel["matchExpressions"] = std::move(exprs);
    }
    spec["selector"] = std::move(sel);
  }
  if (s.request || s.limit) {
    json res = json::object();
    if (s.request) res["requests"] = Storage(*s.request);
    if (s.limit) res["limits"] = Storage(*s.limit);
    spec["resources"] = std::move(res);
  }
  if (!s.volume_name.empty()) spec["volumeName"] = s.volume_name;
  if (s.storage_class_name) spec["storageClassName"] = *s.storage_class_name;
  if (s.volume_mode) spec["volumeMode"] = model::ToString(*s.volume_mode);

  const auto& st = pvc.status;
  json status = {{"phase", model::ToString(st.phase)}};
  if (!st.access_modes.empty()) status["accessModes"] = AccessModesJson(st.access_modes);
  if (st.capacity) status["capacity"] = Storage(*st.capacity);
  if (!st.conditions.empty()) {
    json conditions = json::array();
    for (const auto& c : st.conditions) {
      json cj = {{"type", c.type}, {"status", c.status}};
      if (!c.reason.empty()) cj["reason"] = c.reason;
      if (!c.message.empty()) cj["message"] = c.message;
      if (!c.last_transition_time.empty()) cj["lastTransitionTime"] = c.last_transition_time;
      conditions.push_back(std::move(cj));
    }
    status["conditions"] = std::move(conditions);
  }
  json out = {{"apiVersion", "v1"},
              {"kind", "PersistentVolumeClaim"},
              {"metadata", MetaJson(pvc.metadata)},
              {"spec", std::move(spec)},
              {"status", std::move(status)}};
  internal::MergeUnknown(&out, pvc.unknown_fields);
  return out;
}

json ToJson(const model::Event& ev) {
  json out = {{"apiVersion", "v1"},
              {"kind", "Event"},
              {"metadata", MetaJson(ev.metadata)},
              {"involvedObject", ReferenceJson(ev.involved_object)},
              {"count", ev.count}};
  if (!ev.reason.empty()) out["reason"] = ev.reason;
  if (!ev.message.empty()) out["message"] = ev.message;
  if (!ev.type.empty()) out["type"] = ev.type;
  if (!ev.source_component.empty()) out["source"] = {{"component", ev.source_component}};
  if (!ev.first_timestamp.empty()) out["firstTimestamp"] = ev.first_timestamp;
  if (!ev.last_timestamp.empty()) out["lastTimestamp"] = ev.last_timestamp;
  return out;
}

json ToJson(const Object& object) {
  return std::visit([](const auto& o) { return ToJson(o); }, object);
}

Result<model::StorageClass> StorageClassFromJson(const json& j) {
  internal::Decoder d;
  return Finish(d.DecodeStorageClass(j), d, "StorageClass");
}

Result<model::PersistentVolume> PersistentVolumeFromJson(const json& j) {
  internal::Decoder d;
  return Finish(d.DecodePersistentVolume(j), d, "PersistentVolume");
}

Result<model::PersistentVolumeClaim> PersistentVolumeClaimFromJson(const json& j) {
  internal::Decoder d;
  return Finish(d.DecodePersistentVolumeClaim(j), d, "PersistentVolumeClaim");
}

Result<model::Event> EventFromJson(const json& j) {
  internal::Decoder d;
  return Finish(d.DecodeEvent(j), d, "Event");
}

Result<Object> ObjectFromJson(const json& j) {
  internal::Decoder d;
  auto object = d.DecodeObject(j);
  if (!object || !d.errors().empty()) {
    return Status::Invalid("cannot decode object: " + JoinErrors(d.errors()));
  }
  return std::move(*object);
}

std::optional<Object> DecodeObject(const json& j, DecodeReport* report,
                                   const NumberTexts* numbers) {
  internal::Decoder d([numbers](const std::string& pointer) -> const std::string* {
    if (numbers == nullptr) return nullptr;
    auto it = numbers->find(pointer);
    return it == numbers->end() ? nullptr : &it->second;
  });
  auto object = d.DecodeObject(j);
  report->errors = std::move(d.errors());
  report->unknown_fields = std::move(d.unknown_fields());
  if (!report->errors.empty()) return std::nullopt;
  return object;
}

std::string_view KindOf(const Object& object) {
  switch (object.index()) {
    case 0:
      return "StorageClass";
    case 1:
      return "PersistentVolume";
    default:
      return "PersistentVolumeClaim";
  }
}

const model::ObjectMeta& MetadataOf(const Object& object) {
  return std::visit([](const auto& o) -> const model::ObjectMeta& { return o.metadata; }, object);
}

model::ObjectMeta& MetadataOf(Object& object) {
  return std::visit([](auto& o) -> model::ObjectMeta& { return o.metadata; }, object);
}

}  // namespace claimfs::yaml
