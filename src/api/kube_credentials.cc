#include "kube_credentials.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <memory>
#include <vector>

#include "claimfs/common/log.h"

namespace claimfs::api::internal {
namespace {

constexpr mode_t kSecretFileMode = 0600;
constexpr time_t kCaLifetime = 10L * 365 * 24 * 3600;
constexpr time_t kServerLifetime = 2L * 365 * 24 * 3600;
constexpr size_t kSecretBytes = 32;

Status TlsError(const std::string& what, int rv) {
  return Status::Internal(what + ": " + gnutls_strerror(rv));
}

std::string Hex(const unsigned char* data, size_t size) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 0xf];
  }
  return out;
}

Result<std::string> ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Status::FromErrno("cannot read " + path, errno);
  std::string out;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = Status::FromErrno("cannot read " + path, errno);
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// Writes a new file with mode 0600 (O_EXCL: never over something already there).
Status WriteNewFile(const std::string& path, const std::string& content) {
  int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, kSecretFileMode);
  if (fd < 0) return Status::FromErrno("cannot create " + path, errno);
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = Status::FromErrno("cannot write " + path, errno);
      ::close(fd);
      ::unlink(path.c_str());
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    return Status::FromErrno("cannot write " + path, errno);
  }
  return Status::Ok();
}

struct Key {
  gnutls_x509_privkey_t key = nullptr;
  Key() { gnutls_x509_privkey_init(&key); }
  ~Key() { gnutls_x509_privkey_deinit(key); }
};

struct Cert {
  gnutls_x509_crt_t crt = nullptr;
  Cert() { gnutls_x509_crt_init(&crt); }
  ~Cert() { gnutls_x509_crt_deinit(crt); }
};

Status Generate(Key* key) {
  int rv = gnutls_x509_privkey_generate(key->key, GNUTLS_PK_ECDSA,
                                        GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
  return rv < 0 ? TlsError("cannot generate a key", rv) : Status::Ok();
}

Result<std::string> ExportKey(const Key& key) {
  gnutls_datum_t out{};
  int rv = gnutls_x509_privkey_export2(key.key, GNUTLS_X509_FMT_PEM, &out);
  if (rv < 0) return TlsError("cannot export a key", rv);
  std::string pem(reinterpret_cast<char*>(out.data), out.size);
  gnutls_free(out.data);
  return pem;
}

Result<std::string> ExportCert(const Cert& cert) {
  gnutls_datum_t out{};
  int rv = gnutls_x509_crt_export2(cert.crt, GNUTLS_X509_FMT_PEM, &out);
  if (rv < 0) return TlsError("cannot export a certificate", rv);
  std::string pem(reinterpret_cast<char*>(out.data), out.size);
  gnutls_free(out.data);
  return pem;
}

// Version, serial, validity, subject and key: what both certificates share.
Status Prepare(Cert* cert, const Key& key, const char* common_name, time_t lifetime) {
  unsigned char serial[16];
  int rv = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
  serial[0] &= 0x7f;  // a positive INTEGER
  time_t now = std::time(nullptr);
  if (rv >= 0) rv = gnutls_x509_crt_set_version(cert->crt, 3);
  if (rv >= 0) rv = gnutls_x509_crt_set_serial(cert->crt, serial, sizeof(serial));
  if (rv >= 0) rv = gnutls_x509_crt_set_activation_time(cert->crt, now - 3600);
  if (rv >= 0) rv = gnutls_x509_crt_set_expiration_time(cert->crt, now + lifetime);
  if (rv >= 0) {
    rv = gnutls_x509_crt_set_dn_by_oid(cert->crt, GNUTLS_OID_X520_COMMON_NAME, 0, common_name,
                                       static_cast<unsigned>(std::strlen(common_name)));
  }
  if (rv >= 0) rv = gnutls_x509_crt_set_key(cert->crt, key.key);
  if (rv < 0) return TlsError(std::string("cannot prepare the certificate ") + common_name, rv);
  return Status::Ok();
}

Status SetKeyId(Cert* cert, const Key& key) {
  unsigned char id[64];
  size_t size = sizeof(id);
  int rv = gnutls_x509_privkey_get_key_id(key.key, GNUTLS_KEYID_USE_SHA1, id, &size);
  if (rv >= 0) rv = gnutls_x509_crt_set_subject_key_id(cert->crt, id, size);
  return rv < 0 ? TlsError("cannot set a key id", rv) : Status::Ok();
}

Status MakeCa(const std::string& cert_path, const std::string& key_path) {
  Key key;
  Cert cert;
  Status s = Generate(&key);
  if (s.ok()) s = Prepare(&cert, key, "claimfsd-ca", kCaLifetime);
  if (s.ok()) s = SetKeyId(&cert, key);
  if (!s.ok()) return s;
  int rv = gnutls_x509_crt_set_basic_constraints(cert.crt, 1, 0);
  if (rv >= 0)
    rv = gnutls_x509_crt_set_key_usage(
        cert.crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN | GNUTLS_KEY_DIGITAL_SIGNATURE);
  if (rv >= 0) rv = gnutls_x509_crt_sign2(cert.crt, cert.crt, key.key, GNUTLS_DIG_SHA256, 0);
  if (rv < 0) return TlsError("cannot make the CA certificate", rv);
  Result<std::string> key_pem = ExportKey(key);
  if (!key_pem.ok()) return key_pem.status();
  Result<std::string> cert_pem = ExportCert(cert);
  if (!cert_pem.ok()) return cert_pem.status();
  // The key first: a certificate without its key would be unusable.
  s = WriteNewFile(key_path, *key_pem);
  if (!s.ok()) return s;
  s = WriteNewFile(cert_path, *cert_pem);
  if (!s.ok()) ::unlink(key_path.c_str());
  return s;
}

Status AddIpAddress(Cert* cert, const std::string& ip) {
  unsigned char bytes[16];
  unsigned size = 0;
  if (::inet_pton(AF_INET, ip.c_str(), bytes) == 1) {
    size = 4;
  } else if (::inet_pton(AF_INET6, ip.c_str(), bytes) == 1) {
    size = 16;
  } else {
    return Status::Invalid("not a numeric IP address: " + ip);
  }
  int rv = gnutls_x509_crt_set_subject_alt_name(cert->crt, GNUTLS_SAN_IPADDRESS, bytes, size,
                                                GNUTLS_FSAN_APPEND);
  return rv < 0 ? TlsError("cannot add " + ip + " to the server certificate", rv) : Status::Ok();
}

}  // namespace

Result<KubeCredentials> LoadOrCreateKubeCredentials(const std::string& state_dir,
                                                    const std::string& host) {
  const std::string ca_cert_path = state_dir + "/" + kKubeCaCertFile;
  const std::string ca_key_path = state_dir + "/" + kKubeCaKeyFile;
  const std::string secret_path = state_dir + "/" + kKubeTokenSecretFile;
  struct stat st;
  if (::lstat(ca_cert_path.c_str(), &st) != 0 && errno == ENOENT) {
    ::unlink(ca_key_path.c_str());  // a key left by a start that died before its certificate
    Status made = MakeCa(ca_cert_path, ca_key_path);
    if (!made.ok()) return made;
    log::Info("made the Kubernetes API CA {}", ca_cert_path);
  }
  if (::lstat(secret_path.c_str(), &st) != 0 && errno == ENOENT) {
    unsigned char secret[kSecretBytes];
    int rv = gnutls_rnd(GNUTLS_RND_KEY, secret, sizeof(secret));
    if (rv < 0) return TlsError("cannot make the token secret", rv);
    Status s = WriteNewFile(secret_path, Hex(secret, sizeof(secret)) + "\n");
    if (!s.ok()) return s;
  }
  KubeCredentials out;
  Result<std::string> ca_pem = ReadFile(ca_cert_path);
  if (!ca_pem.ok()) return ca_pem.status();
  Result<std::string> ca_key_pem = ReadFile(ca_key_path);
  if (!ca_key_pem.ok()) return ca_key_pem.status();
  Result<std::string> secret = ReadFile(secret_path);
  if (!secret.ok()) return secret.status();
  while (!secret->empty() && (secret->back() == '\n' || secret->back() == ' ')) secret->pop_back();
  if (secret->size() < 2 * kSecretBytes) {
    return Status::IOError(secret_path +
                           " is too short to be a token secret; remove it to make "
                           "a new one (every kubeconfig then needs `claimctl kubeconfig` again)");
  }
  out.ca_pem = *ca_pem;
  out.token_secret = *secret;

  Cert ca;
  Key ca_key;
  gnutls_datum_t datum{reinterpret_cast<unsigned char*>(ca_pem->data()),
                       static_cast<unsigned>(ca_pem->size())};
  int rv = gnutls_x509_crt_import(ca.crt, &datum, GNUTLS_X509_FMT_PEM);
  if (rv < 0) return TlsError("cannot load " + ca_cert_path, rv);
  datum = {reinterpret_cast<unsigned char*>(ca_key_pem->data()),
           static_cast<unsigned>(ca_key_pem->size())};
  rv = gnutls_x509_privkey_import(ca_key.key, &datum, GNUTLS_X509_FMT_PEM);
  if (rv < 0) return TlsError("cannot load " + ca_key_path, rv);

  Key key;
  Cert cert;
  Status s = Generate(&key);
  if (s.ok()) s = Prepare(&cert, key, "claimfsd", kServerLifetime);
  if (s.ok()) s = SetKeyId(&cert, key);
  if (!s.ok()) return s;
  rv = gnutls_x509_crt_set_basic_constraints(cert.crt, 0, -1);
  if (rv >= 0) rv = gnutls_x509_crt_set_key_usage(cert.crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
  if (rv >= 0) rv = gnutls_x509_crt_set_key_purpose_oid(cert.crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
  if (rv >= 0) {
    rv = gnutls_x509_crt_set_subject_alt_name(cert.crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
                                              GNUTLS_FSAN_APPEND);
  }
  if (rv < 0) return TlsError("cannot make the server certificate", rv);
  for (const std::string& ip : {std::string("127.0.0.1"), std::string("::1")}) {
    s = AddIpAddress(&cert, ip);
    if (!s.ok()) return s;
  }
  if (host != "127.0.0.1" && host != "::1") {
    s = AddIpAddress(&cert, host);
    if (!s.ok()) return s;
  }
  unsigned char ca_id[64];
  size_t ca_id_size = sizeof(ca_id);
  unsigned critical = 0;
  if (gnutls_x509_crt_get_subject_key_id(ca.crt, ca_id, &ca_id_size, &critical) >= 0) {
    gnutls_x509_crt_set_authority_key_id(cert.crt, ca_id, ca_id_size);
  }
  rv = gnutls_x509_crt_sign2(cert.crt, ca.crt, ca_key.key, GNUTLS_DIG_SHA256, 0);
  if (rv < 0) return TlsError("cannot sign the server certificate", rv);
  Result<std::string> cert_pem = ExportCert(cert);
  if (!cert_pem.ok()) return cert_pem.status();
  Result<std::string> key_pem = ExportKey(key);
  if (!key_pem.ok()) return key_pem.status();
  out.server_cert_pem = *cert_pem;
  out.server_key_pem = *key_pem;
  return out;
}

std::string KubeTokenFor(const std::string& secret, uid_t uid) {
  std::string subject = "claimfs-kube-token:" + std::to_string(uid);
  unsigned char digest[32];
  gnutls_hmac_fast(GNUTLS_MAC_SHA256, secret.data(), secret.size(), subject.data(), subject.size(),
                   digest);
  return "claimfs-" + std::to_string(uid) + "." + Hex(digest, sizeof(digest));
}

std::optional<uid_t> VerifyKubeToken(const std::string& secret, std::string_view token) {
  constexpr std::string_view kPrefix = "claimfs-";
  if (token.size() > 128 || token.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  std::string_view rest = token.substr(kPrefix.size());
  size_t dot = rest.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 10) return std::nullopt;
  uint64_t uid = 0;
  auto [end, ec] = std::from_chars(rest.data(), rest.data() + dot, uid);
  if (ec != std::errc() || end != rest.data() + dot || uid >= static_cast<uid_t>(-1)) {
    return std::nullopt;
  }
  std::string expected = KubeTokenFor(secret, static_cast<uid_t>(uid));
  if (expected.size() != token.size()) return std::nullopt;
  unsigned char diff = 0;
  for (size_t i = 0; i < token.size(); ++i)
    diff |= static_cast<unsigned char>(expected[i] ^ token[i]);
  if (diff != 0) return std::nullopt;
  return static_cast<uid_t>(uid);
}

}  // namespace claimfs::api::internal
