#include "process_title.h"

#include <sys/prctl.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

extern char** environ;

namespace claimfs::claimfsd {
namespace {

char* g_area = nullptr;  // argv[0] as the kernel laid it out
size_t g_area_size = 0;  // up to the end of the last contiguous argv or environ string
size_t g_args_end = 0;   // offset of the NUL that ends the last argument (the kernel's arg_end - 1)

}  // namespace

void InitProcessTitle(int argc, char** argv) {
  if (argc <= 0 || argv == nullptr || argv[0] == nullptr || g_area != nullptr) return;
  char* end = argv[0] + strlen(argv[0]);
  for (int i = 1; i < argc; ++i) {
    if (argv[i] == end + 1) end = argv[i] + strlen(argv[i]);
  }
  char* last_arg_end = end;
  size_t env_count = 0;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e, ++env_count) {
    if (*e == end + 1) end = *e + strlen(*e);
  }
  // The environment moves to the heap: its strings are part of the area we overwrite.
  char** env = static_cast<char**>(malloc((env_count + 1) * sizeof(char*)));
  if (env == nullptr) return;
  for (size_t i = 0; i < env_count; ++i) env[i] = strdup(environ[i]);
  env[env_count] = nullptr;
  environ = env;
  g_area = argv[0];
  g_area_size = static_cast<size_t>(end - argv[0]) + 1;
  g_args_end = static_cast<size_t>(last_arg_end - argv[0]);
  for (int i = 0; i < argc; ++i) argv[i] = strdup(argv[i]);
}

void SetProcessComm(std::string_view comm) {
  char name[16] = {};
  std::memcpy(name, comm.data(), std::min(comm.size(), sizeof(name) - 1));
  prctl(PR_SET_NAME, name, 0, 0, 0);
}

void SetProcessTitle(std::string_view title) {
  if (g_area == nullptr || g_area_size < 2) return;
  size_t n = std::min(title.size(), g_area_size - 1);
  std::memcpy(g_area, title.data(), n);
  std::memset(g_area + n, 0, g_area_size - n);
  // With the arguments' last NUL overwritten, the kernel shows the area up to its first NUL, as
  // for setproctitle: /proc/PID/cmdline is then the title alone, not the title and NULs.
  if (n < g_args_end) g_area[g_args_end] = ' ';
}

}  // namespace claimfs::claimfsd
