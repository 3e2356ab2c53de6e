#include "lease_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace claimfs::claimfsd {
using nlohmann::json;

Status SaveLeases(const std::string& path, const std::vector<StoredLease>& leases) {
  json items = json::array();
  for (const StoredLease& s : leases) {
    items.push_back({{"id", s.lease.id},
                     {"claim", s.lease.claim},
                     {"holder", s.lease.holder},
                     {"pid", s.lease.pid},
                     {"acquired", s.lease.acquired},
                     {"startTime", s.start_time}});
  }
  std::string text = json{{"leases", items}}.dump(1) + "\n";
  std::string tmp = path + ".new";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno("cannot write " + tmp, errno);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Status::FromErrno("cannot write " + tmp, err);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    return Status::FromErrno("cannot sync " + tmp, err);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::FromErrno("cannot rename " + tmp + " to " + path, errno);
  }
  return Status::Ok();
}

Result<std::vector<StoredLease>> LoadLeases(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return std::vector<StoredLease>();
    return Status::FromErrno("cannot read " + path, errno);
  }
  std::stringstream text;
  text << in.rdbuf();
  std::vector<StoredLease> out;
  try {
    json doc = json::parse(text.str());
    for (const json& item : doc.at("leases")) {
      StoredLease s;
      s.lease.id = item.at("id").get<std::string>();
      s.lease.claim = item.at("claim").get<std::string>();
      s.lease.holder = item.at("holder").get<std::string>();
      s.lease.pid = item.at("pid").get<int>();
      s.lease.acquired = item.at("acquired").get<std::string>();
      s.start_time = item.at("startTime").get<unsigned long long>();
      out.push_back(std::move(s));
    }
  } catch (const json::exception& e) {
    return Status::Invalid("cannot read the leases in " + path + ": " + e.what());
  }
  return out;
}

}  // namespace claimfs::claimfsd
