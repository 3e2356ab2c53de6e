// claimctl kubeconfig: the kubeconfig with which the real kubectl talks to this claimfsd.

#include <ostream>

#include "claimctl/commands.h"
#include "claimfs/api/client.h"

namespace claimfs::claimctl {

int RunKubeconfig(const GlobalOptions& global, Io& io) {
  // The token is the caller's: `sudo claimctl kubeconfig` gets the sudo user's, as every other
  // sudo'd command acts for that user.
  api::Client client(global.socket.empty() ? api::DefaultSocketPath() : global.socket);
  client.set_extra_headers(api::SudoImpersonationHeaders());
  Result<api::HttpResponse> response = client.Request("GET", "/apis/claimfs.io/v1/kubeconfig");
  if (!response.ok()) {
    io.err << ErrorLine(response.status()) << "\n";
    return kExitError;
  }
  Status status = api::StatusFromResponse(*response);
  if (!status.ok()) {
    io.err << ErrorLine(status) << "\n";
    return kExitError;
  }
  io.out << response->body << std::flush;
  return kExitOk;
}

}  // namespace claimfs::claimctl
