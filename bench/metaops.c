/* metaops: the file-metadata workload of bench/run (row 6).
 *
 * Usage: metaops DIR N [create|stat|unlink]
 * In DIR (which must exist and be empty), creates N empty files (open O_CREAT|O_EXCL, close),
 * stats them all twice (the first pass warms the caches, the second is timed: "hot stat"), then
 * unlinks them all. Prints one line: "create_ops_per_s stat_ops_per_s unlink_ops_per_s".
 * With a phase name it does only that phase (stat: one pass) and prints its ops/s; bench/run
 * uses this to count the FUSE requests of each phase separately.
 * Exits 1 with a message naming the failed call and path on any error.
 *
 * Plain C with no allocation in the timed loops so that the program is never the bottleneck;
 * bench/run compiles it with `cc -O2`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double Now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void Die(const char* call, const char* path) {
  fprintf(stderr, "metaops: %s %s: %s\n", call, path, strerror(errno));
  exit(1);
}

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: metaops DIR N [create|stat|unlink]\n");
    return 2;
  }
  int dirfd = open(argv[1], O_RDONLY | O_DIRECTORY);
  if (dirfd < 0) Die("open", argv[1]);
  long n = strtol(argv[2], NULL, 10);
  if (n <= 0) {
    fprintf(stderr, "metaops: N must be positive\n");
    return 2;
  }
  const char* only = argc == 4 ? argv[3] : NULL;
  if (only && strcmp(only, "create") && strcmp(only, "stat") && strcmp(only, "unlink")) {
    fprintf(stderr, "metaops: unknown phase %s\n", only);
    return 2;
  }
  char name[32];
  struct stat st;

  double create_s = 0, stat_s = 0, unlink_s = 0;
  if (!only || !strcmp(only, "create")) {
    double t0 = Now();
    for (long i = 0; i < n; i++) {
      snprintf(name, sizeof name, "f%07ld", i);
      int fd = openat(dirfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) Die("create", name);
      if (close(fd) < 0) Die("close", name);
    }
    create_s = Now() - t0;
  }

  if (!only || !strcmp(only, "stat")) {
    for (int pass = only ? 1 : 0; pass < 2; pass++) {
      double ts = Now();
      for (long i = 0; i < n; i++) {
        snprintf(name, sizeof name, "f%07ld", i);
        if (fstatat(dirfd, name, &st, 0) < 0) Die("stat", name);
      }
      stat_s = Now() - ts; /* the second pass is the one reported */
    }
  }

  if (!only || !strcmp(only, "unlink")) {
    double tu = Now();
    for (long i = 0; i < n; i++) {
      snprintf(name, sizeof name, "f%07ld", i);
      if (unlinkat(dirfd, name, 0) < 0) Die("unlink", name);
    }
    unlink_s = Now() - tu;
  }
  close(dirfd);
  if (only) {
    double s = !strcmp(only, "create") ? create_s : !strcmp(only, "stat") ? stat_s : unlink_s;
    printf("%.1f\n", n / s);
    return 0;
  }
  printf("%.1f %.1f %.1f\n", n / create_s, n / stat_s, n / unlink_s);
  return 0;
}
