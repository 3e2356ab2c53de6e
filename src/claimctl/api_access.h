// claimctl's view of the daemon: API calls whose failures read as kubectl's, and the decoding of
// what comes back into model objects.
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "claimctl/printers.h"
#include "claimctl/resources.h"
#include "claimfs/api/client.h"
#include "claimfs/common/status.h"
#include "claimfs/model/objects.h"

namespace claimfs::claimctl {

// Where a command's text goes (std::cin/cout/cerr in the binary, strings in tests).
struct Io {
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
};

// Options every command takes.
struct GlobalOptions {
  std::string socket;  // empty: DefaultSocketPath()
  std::string namespace_ = "default";
  bool namespace_explicit = false;  // -n was given
};

// The API with kubectl's error texts: a failure the daemon reports becomes a Status of the same
// code whose message is the whole line kubectl prints, "Error from server (NotFound):
// persistentvolumeclaims \"x\" not found" (or "The PersistentVolumeClaim \"x\" is invalid: ..."
// for Invalid); transport failures keep the client's message. Not thread-safe.
class Api {
 public:
  explicit Api(const GlobalOptions& options);

  Result<nlohmann::json> Call(std::string_view method, std::string_view target,
                              const nlohmann::json* body = nullptr,
                              std::string_view content_type = "application/json");
  Result<nlohmann::json> Get(std::string_view target) { return Call("GET", target); }

  // The items of a list response.
  Result<std::vector<nlohmann::json>> List(std::string_view target);
  // Events about an object, oldest first as the daemon keeps them; a failure to fetch them is a
  // Status (describe then leaves the Events section out). With a `uid`, only that object's: not
  // those of an earlier object of the same name (kubectl describe selects on the uid too).
  Result<std::vector<model::Event>> Events(Kind kind, std::string_view ns, std::string_view name,
                                           std::string_view uid = "");
  // Mounted volumes' usage.
  Result<std::vector<VolumeStats>> Stats();
  // Who uses a claim, as describe's "Used By" prints them: lease holders with their pid when
  // the lease ends with a process ("claimctl use (pid 4242)"), then what the daemon finds using
  // the mounted volume ("pid 7541 (sleep)", "container 1a2b3c4d5e6f (pid 88, sh)",
  // "bind mount at /mnt/x"). A daemon without the users list gives the holders alone.
  Result<std::vector<std::string>> UsedBy(std::string_view ns, std::string_view claim);

 private:
  api::Client client_;
};

// The API path of a claim's leases.
std::string LeasesPath(std::string_view ns, std::string_view claim);

// The line a failure prints on stderr: the message itself when it is already kubectl's text of a
// server error, else "error: " + message.
std::string ErrorLine(const Status& status);

// The object's name and namespace from its JSON.
std::string NameOf(const nlohmann::json& object);
std::string NamespaceOf(const nlohmann::json& object);
std::string UidOf(const nlohmann::json& object);  // "" when it has none

// Sorts objects by namespace, then name (the order the Kubernetes API lists them in).
void SortByNamespaceAndName(std::vector<nlohmann::json>* objects);

// The JSON of an object with fields that must not count as a change removed
// (metadata.resourceVersion, metadata.managedFields).
nlohmann::json WithoutVolatileFields(nlohmann::json object);

}  // namespace claimfs::claimctl
