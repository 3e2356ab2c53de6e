// The OpenAPI documents kubectl fetches: v3 (/openapi/v3 and one document per group-version),
// which tells kubectl 1.27+ that the server validates fields itself and gives `kubectl explain`
// its text, and v2 (/openapi/v2), which older kubectl validates manifests against. Both describe
// the same schemas: the three kinds as claimfsd stores them, with Kubernetes' descriptions.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kube_api.h"

namespace claimfs::api::internal {

using nlohmann::json;

namespace {

constexpr char kCore[] = "io.k8s.api.core.v1.";
constexpr char kStorage[] = "io.k8s.api.storage.v1.";
constexpr char kMeta[] = "io.k8s.apimachinery.pkg.apis.meta.v1.";
constexpr char kQuantity[] = "io.k8s.apimachinery.pkg.api.resource.Quantity";

// Schemas are written once with "@" where the reference prefix goes ("#/components/schemas/"
// in v3, "#/definitions/" in v2).
struct Field {
  std::string name;
  json schema;
};

json Str(const char* description) { return json{{"type", "string"}, {"description", description}}; }
json Int(const char* description) {
  return json{{"type", "integer"}, {"format", "int64"}, {"description", description}};
}
json Bool(const char* description) {
  return json{{"type", "boolean"}, {"description", description}};
}
json Strings(const char* description) {
  return json{{"type", "array"},
              {"items", {{"type", "string"}, {"default", ""}}},
              {"description", description}};
}
json StringMap(const char* description) {
  return json{{"type", "object"},
              {"additionalProperties", {{"type", "string"}, {"default", ""}}},
              {"description", description}};
}
json Ref(const std::string& name, const char* description) {
  return json{{"allOf", {{{"$ref", "@" + name}}}}, {"description", description}};
}
json Refs(const std::string& name, const char* description) {
  return json{{"type", "array"}, {"items", {{"$ref", "@" + name}}}, {"description", description}};
}
json QuantityMap(const char* description) {
  return json{{"type", "object"},
              {"additionalProperties", {{"$ref", std::string("@") + kQuantity}}},
              {"description", description}};
}
json Obj(const char* description, std::vector<Field> fields,
         std::vector<std::string> required = {}) {
  json properties = json::object();
  for (Field& f : fields) properties[f.name] = std::move(f.schema);
  json out{{"type", "object"}, {"description", description}, {"properties", properties}};
  if (!required.empty()) out["required"] = required;
  return out;
}
json Kind(json schema, const char* group, const char* kind) {
  schema["x-kubernetes-group-version-kind"] = {
      {{"group", group}, {"kind", kind}, {"version", "v1"}}};
  return schema;
}

std::vector<Field> TypeMeta() {
  return {{"apiVersion", Str("APIVersion defines the versioned schema of this representation of an "
                             "object. Servers should convert recognized schemas to the latest "
                             "internal value, and may reject unrecognized values.")},
          {"kind", Str("Kind is a string value representing the REST resource this object "
                       "represents. Servers may infer this from the endpoint the client submits "
                       "requests to. Cannot be updated. In CamelCase.")}};
}

std::vector<Field> With(std::vector<Field> a, std::vector<Field> b) {
  for (Field& f : b) a.push_back(std::move(f));
  return a;
}

json Object(const char* description, const std::string& spec, const std::string& status,
            const char* spec_text, const char* status_text) {
  std::vector<Field> fields =
      With(TypeMeta(),
           {{"metadata", Ref(std::string(kMeta) + "ObjectMeta", "Standard object's metadata.")}});
  if (!spec.empty()) fields.push_back({"spec", Ref(spec, spec_text)});
  if (!status.empty()) fields.push_back({"status", Ref(status, status_text)});
  return Obj(description, std::move(fields));
}

json List(const char* description, const std::string& item) {
  return Obj(description,
             With(TypeMeta(),
                  {{"items", Refs(item, "items is a list of objects.")},
                   {"metadata", Ref(std::string(kMeta) + "ListMeta", "Standard list metadata.")}}),
             {"items"});
}

// Every schema, with "@" for the reference prefix.
json Schemas() {
  const std::string core = kCore, storage = kStorage, meta = kMeta;
  json s = json::object();
  s[kQuantity] = {
      {"type", "string"},
      {"description",
       "Quantity is a fixed-point representation of a number: 1Gi, 500Mi, 2G, 1.5Gi, 1e9."}};
  s[meta + "Time"] = {
      {"type", "string"},
      {"format", "date-time"},
      {"description", "Time is a wrapper around time.Time, serialized as RFC 3339."}};
  s[meta + "ObjectMeta"] = Obj(
      "ObjectMeta is metadata that all persisted resources must have, which includes all objects "
      "users must create.",
      {{"annotations",
        StringMap("Annotations is an unstructured key value map stored with a resource that may be "
                  "set by external tools to store and retrieve arbitrary metadata.")},
       {"creationTimestamp", Ref(meta + "Time",
                                 "CreationTimestamp is a timestamp representing the server time "
                                 "when this object was created.")},
       {"deletionGracePeriodSeconds", Int("Number of seconds allowed for this object to gracefully "
                                          "terminate before it will be removed from the system.")},
       {"deletionTimestamp",
        Ref(meta + "Time",
            "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted.")},
       {"finalizers", Strings("Must be empty before the object is deleted from the registry.")},
       {"generateName", Str("GenerateName is an optional prefix, used by the server, to generate a "
                            "unique name ONLY IF the Name field has not been provided.")},
       {"generation",
        Int("A sequence number representing a specific generation of the desired state.")},
       {"labels", StringMap("Map of string keys and values that can be used to organize and "
                            "categorize (scope and select) objects.")},
       {"managedFields", json{{"type", "array"},
                              {"items", {{"type", "object"}}},
                              {"description",
                               "ManagedFields maps workflow-id and version to the set of fields "
                               "that are managed by that workflow."}}},
       {"name", Str("Name must be unique within a namespace.")},
       {"namespace", Str("Namespace defines the space within which each name must be unique.")},
       {"ownerReferences", json{{"type", "array"},
                                {"items", {{"type", "object"}}},
                                {"description", "List of objects depended by this object."}}},
       {"resourceVersion",
        Str("An opaque value that represents the internal version of this object.")},
       {"selfLink", Str("Deprecated: selfLink is a legacy read-only field that is no longer "
                        "populated by the system.")},
       {"uid", Str("UID is the unique in time and space value for this object.")}});
  s[meta + "ListMeta"] =
      Obj("ListMeta describes metadata that synthetic resources must have.",
          {{"continue",
            Str("continue may be set if the user set a limit on the number of items returned.")},
           {"remainingItemCount",
            Int("remainingItemCount is the number of subsequent items in the list.")},
           {"resourceVersion",
            Str("String that identifies the server's internal version of this object.")},
           {"selfLink", Str("Deprecated: selfLink is a legacy read-only field.")}});
  s[meta + "LabelSelectorRequirement"] =
      Obj("A label selector requirement is a selector that contains values, a key, and an operator "
          "that relates the key and values.",
          {{"key", Str("key is the label key that the selector applies to.")},
           {"operator", Str("operator represents a key's relationship to a set of values. Valid "
                            "operators are In, NotIn, Exists and DoesNotExist.")},
           {"values", Strings("values is an array of string values.")}},
          {"key", "operator"});
  s[meta + "LabelSelector"] =
      Obj("A label selector is a label query over a set of resources.",
          {{"matchExpressions", Refs(meta + "LabelSelectorRequirement",
                                     "matchExpressions is a list of label selector requirements. "
                                     "The requirements are ANDed.")},
           {"matchLabels", StringMap("matchLabels is a map of {key,value} pairs.")}});
  s[core + "ObjectReference"] =
      Obj("ObjectReference contains enough information to let you inspect or modify the referred "
          "object.",
          {{"apiVersion", Str("API version of the referent.")},
           {"fieldPath", Str("If referring to a piece of an object instead of an entire object, "
                             "this string should contain a valid JSON/Go field access statement.")},
           {"kind", Str("Kind of the referent.")},
           {"name", Str("Name of the referent.")},
           {"namespace", Str("Namespace of the referent.")},
           {"resourceVersion",
            Str("Specific resourceVersion to which this reference is made, if any.")},
           {"uid", Str("UID of the referent.")}});
  s[core + "HostPathVolumeSource"] =
      Obj("Represents a host path mapped into a pod. Host path volumes do not support ownership "
          "management or SELinux relabeling.",
          {{"path", Str("path of the directory on the host. If the path is a symlink, it will "
                        "follow the link to the real path.")},
           {"type", Str("type for HostPath Volume. Defaults to \"\".")}},
          {"path"});
  s[core + "LocalVolumeSource"] =
      Obj("Local represents directly-attached storage with node affinity (Beta feature)",
          {{"fsType", Str("fsType is the filesystem type to mount.")},
           {"path", Str("path of the full path to the volume on the node. It can be either a "
                        "directory or block device (disk, partition, ...).")}},
          {"path"});
  s[core + "VolumeNodeAffinity"] = {{"type", "object"},
                                    {"description",
                                     "VolumeNodeAffinity defines constraints that limit what nodes "
                                     "this volume can be accessed from."}};
  s[core + "PersistentVolumeSpec"] = Obj(
      "PersistentVolumeSpec is the specification of a persistent volume.",
      {{"accessModes", Strings("accessModes contains all ways the volume can be mounted.")},
       {"capacity",
        QuantityMap(
            "capacity is the description of the persistent volume's resources and capacity.")},
       {"claimRef", Ref(core + "ObjectReference",
                        "claimRef is part of a bi-directional binding between PersistentVolume and "
                        "PersistentVolumeClaim. Expected to be non-nil when bound.")},
       {"hostPath",
        Ref(core + "HostPathVolumeSource", "hostPath represents a directory on the host.")},
       {"local", Ref(core + "LocalVolumeSource",
                     "local represents directly-attached storage with node affinity")},
       {"mountOptions",
        Strings("mountOptions is the list of mount options, e.g. [\"ro\", \"soft\"]. Not validated "
                "- mount will simply fail if one is invalid.")},
       {"nodeAffinity", Ref(core + "VolumeNodeAffinity",
                            "nodeAffinity defines constraints that limit what nodes this volume "
                            "can be accessed from.")},
       {"persistentVolumeReclaimPolicy",
        Str("persistentVolumeReclaimPolicy defines what happens to a persistent volume when "
            "released from its claim. Valid options are Retain (default for manually created "
            "PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), "
            "and Recycle (deprecated).")},
       {"storageClassName",
        Str("storageClassName is the name of StorageClass to which this persistent volume belongs. "
            "Empty value means that this volume does not belong to any StorageClass.")},
       {"volumeMode", Str("volumeMode defines if a volume is intended to be used with a formatted "
                          "filesystem or to remain in raw block state. Value of Filesystem is "
                          "implied when not included in spec.")}});
  s[core + "PersistentVolumeStatus"] = Obj(
      "PersistentVolumeStatus is the current status of a persistent volume.",
      {{"lastPhaseTransitionTime",
        Ref(meta + "Time",
            "lastPhaseTransitionTime is the time the phase transitioned from one to another.")},
       {"message", Str("message is a human-readable message indicating details about why the "
                       "volume is in this state.")},
       {"phase",
        Str("phase indicates if a volume is available, bound to a claim, or released by a claim.")},
       {"reason", Str("reason is a brief CamelCase string that describes any failure and is meant "
                      "for machine parsing and tidy display in the CLI.")}});
  s[core + "PersistentVolume"] =
      Kind(Object("PersistentVolume (PV) is a storage resource provisioned by an administrator. It "
                  "is analogous to a node.",
                  core + "PersistentVolumeSpec", core + "PersistentVolumeStatus",
                  "spec defines a specification of a persistent volume owned by the cluster. "
                  "Provisioned by an administrator.",
                  "status represents the current information/status for the persistent volume. "
                  "Populated by the system. Read-only."),
           "", "PersistentVolume");
  s[core + "PersistentVolumeList"] = Kind(
      List("PersistentVolumeList is a list of PersistentVolume items.", core + "PersistentVolume"),
      "", "PersistentVolumeList");
  s[core + "VolumeResourceRequirements"] = Obj(
      "VolumeResourceRequirements describes the storage resource requirements for a volume.",
      {{"limits", QuantityMap("Limits describes the maximum amount of compute resources allowed.")},
       {"requests",
        QuantityMap("Requests describes the minimum amount of compute resources required.")}});
  s[core + "PersistentVolumeClaimSpec"] = Obj(
      "PersistentVolumeClaimSpec describes the common attributes of storage devices and allows a "
      "Source for provider-specific attributes",
      {{"accessModes",
        Strings("accessModes contains the desired access modes the volume should have.")},
       {"dataSource", json{{"type", "object"},
                           {"description",
                            "dataSource field can be used to specify an existing VolumeSnapshot or "
                            "PersistentVolumeClaim."}}},
       {"dataSourceRef",
        json{{"type", "object"},
             {"description",
              "dataSourceRef specifies the object from which to populate the volume with data."}}},
       {"resources", Ref(core + "VolumeResourceRequirements",
                         "resources represents the minimum resources the volume should have.")},
       {"selector", Ref(meta + "LabelSelector",
                        "selector is a label query over volumes to consider for binding.")},
       {"storageClassName",
        Str("storageClassName is the name of the StorageClass required by the claim.")},
       {"volumeMode", Str("volumeMode defines what type of volume is required by the claim. Value "
                          "of Filesystem is implied when not included in claim spec.")},
       {"volumeName",
        Str("volumeName is the binding reference to the PersistentVolume backing this claim.")}});
  s[core + "PersistentVolumeClaimCondition"] = Obj(
      "PersistentVolumeClaimCondition contains details about state of pvc",
      {{"lastProbeTime", Ref(meta + "Time", "lastProbeTime is the time we probed the condition.")},
       {"lastTransitionTime", Ref(meta + "Time",
                                  "lastTransitionTime is the time the condition transitioned from "
                                  "one status to another.")},
       {"message",
        Str("message is the human-readable message indicating details about last transition.")},
       {"reason", Str("reason is a unique, this should be a short, machine understandable string "
                      "that gives the reason for condition's last transition.")},
       {"status", Str("")},
       {"type", Str("")}},
      {"type", "status"});
  s[core + "PersistentVolumeClaimStatus"] = Obj(
      "PersistentVolumeClaimStatus is the current status of a persistent volume claim.",
      {{"accessModes",
        Strings("accessModes contains the actual access modes the volume backing the PVC has.")},
       {"allocatedResources",
        QuantityMap(
            "allocatedResources tracks the resources allocated to a PVC including its capacity.")},
       {"capacity",
        QuantityMap("capacity represents the actual resources of the underlying volume.")},
       {"conditions", Refs(core + "PersistentVolumeClaimCondition",
                           "conditions is the current Condition of persistent volume claim.")},
       {"phase", Str("phase represents the current phase of PersistentVolumeClaim.")}});
  s[core + "PersistentVolumeClaim"] =
      Kind(Object("PersistentVolumeClaim is a user's request for and claim to a persistent volume",
                  core + "PersistentVolumeClaimSpec", core + "PersistentVolumeClaimStatus",
                  "spec defines the desired characteristics of a volume requested by a pod author.",
                  "status represents the current information/status of a persistent volume claim. "
                  "Read-only."),
           "", "PersistentVolumeClaim");
  s[core + "PersistentVolumeClaimList"] =
      Kind(List("PersistentVolumeClaimList is a list of PersistentVolumeClaim items.",
                core + "PersistentVolumeClaim"),
           "", "PersistentVolumeClaimList");
  s[core + "EventSource"] = Obj("EventSource contains information for an event.",
                                {{"component", Str("Component from which the event is generated.")},
                                 {"host", Str("Node name on which the event is generated.")}});
  s[core + "Event"] = Kind(
      Obj("Event is a report of an event somewhere in the cluster.",
          With(TypeMeta(),
               {{"metadata", Ref(meta + "ObjectMeta", "Standard object's metadata.")},
                {"count", Int("The number of times this event has occurred.")},
                {"firstTimestamp",
                 Ref(meta + "Time", "The time at which the event was first recorded.")},
                {"involvedObject",
                 Ref(core + "ObjectReference", "The object that this event is about.")},
                {"lastTimestamp",
                 Ref(meta + "Time",
                     "The time at which the most recent occurrence of this event was recorded.")},
                {"message", Str("A human-readable description of the status of this operation.")},
                {"reason", Str("This should be a short, machine understandable string that gives "
                               "the reason for the transition into the object's current status.")},
                {"source", Ref(core + "EventSource", "The component reporting this event.")},
                {"type", Str("Type of this event (Normal, Warning), new types could be added in "
                             "the future")}}),
          {"metadata", "involvedObject"}),
      "", "Event");
  s[core + "EventList"] =
      Kind(List("EventList is a list of events.", core + "Event"), "", "EventList");
  s[storage + "StorageClass"] = Kind(
      Obj("StorageClass describes the parameters for a class of storage for which "
          "PersistentVolumes can be dynamically provisioned.",
          With(TypeMeta(),
               {{"metadata", Ref(meta + "ObjectMeta", "Standard object's metadata.")},
                {"allowVolumeExpansion",
                 Bool("allowVolumeExpansion shows whether the storage class allow volume expand.")},
                {"allowedTopologies", json{{"type", "array"},
                                           {"items", {{"type", "object"}}},
                                           {"description",
                                            "allowedTopologies restrict the node topologies where "
                                            "volumes can be dynamically provisioned."}}},
                {"mountOptions", Strings("mountOptions controls the mountOptions for dynamically "
                                         "provisioned PersistentVolumes of this storage class.")},
                {"parameters", StringMap("parameters holds the parameters for the provisioner that "
                                         "should create volumes of this storage class.")},
                {"provisioner", Str("provisioner indicates the type of the provisioner.")},
                {"reclaimPolicy",
                 Str("reclaimPolicy controls the reclaimPolicy for dynamically provisioned "
                     "PersistentVolumes of this storage class. Defaults to Delete.")},
                {"volumeBindingMode",
                 Str("volumeBindingMode indicates how PersistentVolumeClaims should be provisioned "
                     "and bound. When unset, VolumeBindingImmediate is used.")}}),
          {"provisioner"}),
      "storage.k8s.io", "StorageClass");
  s[storage + "StorageClassList"] =
      Kind(List("StorageClassList is a collection of storage classes.", storage + "StorageClass"),
           "storage.k8s.io", "StorageClassList");
  return s;
}

// Replaces "@" at the start of every "$ref" with `prefix`; v2 also drops allOf wrappers, which
// its validators do not expect.
json WithRefs(const json& node, const std::string& prefix, bool v2) {
  if (node.is_object()) {
    if (v2 && node.contains("allOf") && node["allOf"].size() == 1) {
      json out = WithRefs(node["allOf"][0], prefix, v2);
      if (node.contains("description")) out["description"] = node["description"];
      return out;
    }
    json out = json::object();
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (it.key() == "$ref" && it->is_string() && it->get<std::string>().rfind("@", 0) == 0) {
        out["$ref"] = prefix + it->get<std::string>().substr(1);
      } else {
        out[it.key()] = WithRefs(*it, prefix, v2);
      }
    }
    return out;
  }
  if (node.is_array()) {
    json out = json::array();
    for (const json& item : node) out.push_back(WithRefs(item, prefix, v2));
    return out;
  }
  return node;
}

// The schemas one group-version's document carries: its kinds and everything they refer to
// (all of them: a small set).
// kubectl sends fieldValidation (and leaves validation to the server) when the PATCH operation
// of the kind's path lists it.
json Paths(const char* group, std::vector<std::pair<const char*, const char*>> kinds) {
  json paths = json::object();
  for (const auto& [path, kind] : kinds) {
    json operation{
        {"x-kubernetes-group-version-kind", {{"group", group}, {"version", "v1"}, {"kind", kind}}},
        {"parameters",
         {{{"name", "fieldValidation"},
           {"in", "query"},
           {"schema", {{"type", "string"}, {"uniqueItems", true}}}}}},
        {"responses", {{"200", {{"description", "OK"}}}}}};
    paths[path] = {{"patch", operation}};
  }
  return paths;
}

json V3Document(json paths) {
  json info{{"title", "Kubernetes"}, {"version", kKubeGitVersion}};
  return json{{"openapi", "3.0.0"},
              {"info", info},
              {"paths", std::move(paths)},
              {"components", {{"schemas", WithRefs(Schemas(), "#/components/schemas/", false)}}}};
}

// ---- OpenAPI v2 as protobuf (gnostic's openapi_v2.Document): what kubectl asks /openapi/v2
// for. Only the fields the schemas above use are written.

void Varint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

void Bytes(int field, const std::string& bytes, std::string* out) {
  Varint(static_cast<uint64_t>(field) << 3 | 2, out);
  Varint(bytes.size(), out);
  out->append(bytes);
}

std::string NamedAnyYaml(const std::string& name, const json& value) {
  std::string any;
  Bytes(2, value.dump(), &any);  // Any.yaml: JSON is YAML
  std::string named;
  Bytes(1, name, &named);
  Bytes(2, any, &named);
  return named;
}

std::string SchemaProto(const json& schema) {
  std::string out;
  auto text = [&](int field, const char* key) {
    auto it = schema.find(key);
    if (it != schema.end() && it->is_string()) Bytes(field, it->get<std::string>(), &out);
  };
  text(1, "$ref");
  text(2, "format");
  text(4, "description");
  if (auto it = schema.find("required"); it != schema.end()) {
    for (const json& name : *it) Bytes(19, name.get<std::string>(), &out);
  }
  if (auto it = schema.find("additionalProperties"); it != schema.end() && it->is_object()) {
    std::string item;
    Bytes(1, SchemaProto(*it), &item);
    Bytes(21, item, &out);
  }
  if (auto it = schema.find("type"); it != schema.end() && it->is_string()) {
    std::string type;
    Bytes(1, it->get<std::string>(), &type);
    Bytes(22, type, &out);
  }
  if (auto it = schema.find("items"); it != schema.end() && it->is_object()) {
    std::string items;
    Bytes(1, SchemaProto(*it), &items);
    Bytes(23, items, &out);
  }
  if (auto it = schema.find("properties"); it != schema.end() && it->is_object()) {
    std::string properties;
    for (auto p = it->begin(); p != it->end(); ++p) {
      std::string named;
      Bytes(1, p.key(), &named);
      Bytes(2, SchemaProto(p.value()), &named);
      Bytes(1, named, &properties);
    }
    Bytes(25, properties, &out);
  }
  for (auto e = schema.begin(); e != schema.end(); ++e) {
    if (e.key().rfind("x-", 0) == 0) Bytes(31, NamedAnyYaml(e.key(), e.value()), &out);
  }
  return out;
}

std::string DocumentProto(const json& document) {
  std::string out;
  Bytes(1, "2.0", &out);
  std::string info;
  Bytes(1, "Kubernetes", &info);
  Bytes(2, kKubeGitVersion, &info);
  Bytes(2, info, &out);
  Bytes(8, "", &out);  // no paths
  std::string definitions;
  for (auto it = document["definitions"].begin(); it != document["definitions"].end(); ++it) {
    std::string named;
    Bytes(1, it.key(), &named);
    Bytes(2, SchemaProto(it.value()), &named);
    Bytes(1, named, &definitions);
  }
  Bytes(9, definitions, &out);
  return out;
}

}  // namespace

void AddOpenApiRoutes(http::Router* router) {
  static const json kV2{{"swagger", "2.0"},
                        {"info", {{"title", "Kubernetes"}, {"version", kKubeGitVersion}}},
                        {"paths", json::object()},
                        {"definitions", WithRefs(Schemas(), "#/definitions/", true)}};
  static const json kCoreV3 = V3Document(Paths(
      "",
      {{"/api/v1/persistentvolumes/{name}", "PersistentVolume"},
       {"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}", "PersistentVolumeClaim"}}));
  static const json kStorageV3 = V3Document(
      Paths("storage.k8s.io", {{"/apis/storage.k8s.io/v1/storageclasses/{name}", "StorageClass"}}));
  static const std::string kV2Proto = DocumentProto(kV2);
  router->Add("GET", "/openapi/v2", [](const http::Request& request, const http::PathParams&) {
    const std::string* accept = request.Header("accept");
    if (accept && accept->find("protobuf") != std::string::npos) {
      return http::Response::Text(200, kV2Proto, "application/octet-stream");
    }
    return http::Response::Json(200, kV2);
  });
  router->Add("GET", "/openapi/v3", [](const http::Request&, const http::PathParams&) {
    std::string hash = std::string("?hash=") + kKubeGitVersion;
    return http::Response::Json(
        200, json{{"paths",
                   {{"api/v1", {{"serverRelativeURL", "/openapi/v3/api/v1" + hash}}},
                    {"apis/storage.k8s.io/v1",
                     {{"serverRelativeURL", "/openapi/v3/apis/storage.k8s.io/v1" + hash}}}}}});
  });
  router->Add("GET", "/openapi/v3/api/v1", [](const http::Request&, const http::PathParams&) {
    return http::Response::Json(200, kCoreV3);
  });
  router->Add("GET", "/openapi/v3/apis/storage.k8s.io/v1",
              [](const http::Request&, const http::PathParams&) {
                return http::Response::Json(200, kStorageV3);
              });
}

}  // namespace claimfs::api::internal
