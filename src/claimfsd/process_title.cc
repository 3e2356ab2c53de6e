#include "process_title.h"

#include <sys/prctl.h>

#include <cstdlib>
#include <cstring>
#include <string>

extern char** environ;

namespace claimfs::claimfsd {
namespace {

char* title_area = nullptr;
size_t title_area_size = 0;
// The NUL that ends the last argument: the kernel's arg_end - 1.
size_t args_end = 0;

}  // namespace

void InitProcessTitle(int argc, char** argv) {
  if (title_area != nullptr || argc < 1 || argv == nullptr || argv[0] == nullptr) return;
  // The area runs while the strings are back to back: argv's, then environ's.
  char* end = nullptr;
  for (int i = 0; i < argc; ++i) {
    if (end == nullptr || argv[i] == end + 1) end = argv[i] + std::strlen(argv[i]);
  }
  char* last_arg_end = end;
  size_t env_count = 0;
  while (environ != nullptr && environ[env_count] != nullptr) ++env_count;
  for (size_t i = 0; i < env_count; ++i) {
    if (environ[i] == end + 1) end = environ[i] + std::strlen(environ[i]);
  }
  // The environment moves to the heap; it lives as long as the process.
  char** moved = static_cast<char**>(std::calloc(env_count + 1, sizeof(char*)));
  if (moved == nullptr) return;
  for (size_t i = 0; i < env_count; ++i) {
    moved[i] = ::strdup(environ[i]);
    if (moved[i] == nullptr) return;
  }
  environ = moved;
  title_area = argv[0];
  title_area_size = static_cast<size_t>(end - argv[0]) + 1;
  args_end = static_cast<size_t>(last_arg_end - argv[0]);
}

void SetProcessTitle(std::string_view title) {
  if (title_area == nullptr || title_area_size < 2) return;
  size_t n = std::min(title.size(), title_area_size - 1);
  std::memcpy(title_area, title.data(), n);
  std::memset(title_area + n, '\0', title_area_size - n);
  // With the arguments' last NUL overwritten, the kernel shows the area up to its first NUL
  // (what it does for setproctitle), not the title and a tail of NULs.
  if (n < args_end) title_area[args_end] = ' ';
}

void SetProcessName(std::string_view name) {
  std::string comm(name.substr(0, 15));
  ::prctl(PR_SET_NAME, comm.c_str(), 0, 0, 0);
}

}  // namespace claimfs::claimfsd
