// Manifests: YAML or JSON text holding one or more objects (documents split by ---), decoded,
// defaulted and validated as the API server would, every problem located at file:line:column.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "claimfs/common/status.h"
#include "claimfs/yaml/codec.h"

namespace claimfs::yaml {

// A finding at a place in a file; line and column are 1-based.
struct Diagnostic {
  std::string file;
  int line = 1;
  int column = 1;
  std::string message;  // "spec.accessModes: Required value", "unknown field \"spec.foo\""

  std::string ToString() const;  // "pvc.yaml:9:16: spec.resources.requests.storage: ..."
};

// An object of a document that had no error, and where its document starts.
struct Manifest {
  Object object;
  int line = 1;
  int column = 1;
};

struct ManifestSet {
  std::vector<Manifest> objects;     // in order; without documents that had errors, and empty
                                     // when the text is not YAML at all
  std::vector<Diagnostic> errors;    // every error of every document
  std::vector<Diagnostic> warnings;  // unknown fields (kept in the objects' unknown_fields)

  bool ok() const { return errors.empty(); }
  // kInvalid with every error, one per line, or Ok.
  Status status() const;
};

struct ParseOptions {
  bool set_defaults = true;  // defaults.h
  bool validate = true;      // create validation, validation.h
};

// Decodes every document of `text`; `file` names it in diagnostics. Empty documents are skipped.
// YAML follows the 1.2 core schema (true/false, null, numbers; "yes" is a string); values YAML or
// JSON typed wrongly for their field are errors, not conversions. Never throws.
ManifestSet ParseManifests(std::string_view text, std::string_view file,
                           const ParseOptions& options = {});

// One YAML or JSON document as a JSON value, read as ParseManifests reads values (YAML 1.2 core
// schema, duplicate keys refused, nesting and alias expansion bounded); for text that is not an
// object manifest, such as a patch. kInvalid "line 1 column 3: ..." when it is not exactly one
// readable document. Never throws.
Result<nlohmann::json> ParseValue(std::string_view text);

// Block YAML of ToJson(object), or of any JSON value; strings YAML would read as something else
// ("true", "1Gi" is fine, "123", "") are quoted, so ParseManifests(ToYaml(x)) gives x back.
std::string ToYaml(const Object& object);
std::string ToYaml(const nlohmann::json& json);

// kubectl's name for an object: "persistentvolume/pv-hostpath",
// "persistentvolumeclaim/pvc-hostpath", "storageclass.storage.k8s.io/local".
std::string ResourceName(const Object& object);

}  // namespace claimfs::yaml
