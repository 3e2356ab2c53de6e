// The credentials of the Kubernetes-compatible HTTPS listener: a CA and a server certificate made
// with GnuTLS and kept in the state directory, and bearer tokens derived from a secret kept there.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "claimfs/common/status.h"

namespace claimfs::api::internal {

struct KubeCredentials {
  std::string ca_pem;           // what clients trust (certificate-authority-data)
  std::string server_cert_pem;  // for the listen address, signed by the CA
  std::string server_key_pem;
  std::string token_secret;  // never leaves the daemon
};

// File names inside the state directory (0600, root's like every file there).
inline constexpr char kKubeCaCertFile[] = "kube-ca.crt";
inline constexpr char kKubeCaKeyFile[] = "kube-ca.key";
inline constexpr char kKubeTokenSecretFile[] = "kube-token.secret";

// Loads the CA and token secret from `state_dir`, making them on the first start, and issues a
// fresh server certificate (ECDSA P-256) for `host` (a numeric address), localhost, 127.0.0.1 and
// ::1. Fails with kIOError naming the file that cannot be read or written, kInternal when GnuTLS
// fails.
Result<KubeCredentials> LoadOrCreateKubeCredentials(const std::string& state_dir,
                                                    const std::string& host);

// The bearer token of `uid`: "claimfs-<uid>.<hex HMAC-SHA256(secret, uid)>". Stateless: the same
// secret gives the same token, so kubeconfigs stay valid across restarts.
std::string KubeTokenFor(const std::string& secret, uid_t uid);
// The uid a token was issued to, or nullopt when it is malformed or was not made with `secret`
// (compared in constant time).
std::optional<uid_t> VerifyKubeToken(const std::string& secret, std::string_view token);

}  // namespace claimfs::api::internal
