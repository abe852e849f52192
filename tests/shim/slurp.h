/* Reads a whole file with open/fstat/read (through the shim when the path is under the mount). Returns a
 * malloc'd buffer (one spare byte) and its length in *n, or NULL when it cannot be opened or stat'ed.
 * Shared by the C test programs here; c_compat.c keeps its own stdio version, which is what it tests. */
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static inline char* slurp(const char* path, size_t* n) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return NULL;
  }
  char* buf = malloc((size_t)st.st_size + 1);
  size_t got = 0;
  ssize_t r;
  while ((r = read(fd, buf + got, (size_t)st.st_size - got)) > 0) got += (size_t)r;
  close(fd);
  *n = got;
  return buf;
}
