/* Fault injection for tests/it/faults.rs, loaded into the daemon with LD_PRELOAD: fsync(2) and fdatasync(2) fail
 * with EIO, as on a failing disk, for a descriptor whose path ends with the text held by the file that
 * $ACP_BRIDGE_TEST_EIO_SWITCH names. No such file, or an empty one, and every call goes through untouched, so the
 * test turns the fault on and off while the daemon runs. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int should_fail(int fd) {
    const char *switch_path = getenv("ACP_BRIDGE_TEST_EIO_SWITCH");
    if (switch_path == NULL) return 0;
    int sw = open(switch_path, O_RDONLY | O_CLOEXEC);
    if (sw < 0) return 0;
    char suffix[256];
    ssize_t n = read(sw, suffix, sizeof suffix - 1);
    close(sw);
    if (n <= 0) return 0;
    suffix[n] = '\0';
    size_t wanted = strcspn(suffix, "\n");
    suffix[wanted] = '\0';
    if (wanted == 0) return 0;

    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, path, sizeof path - 1);
    if (len < 0) return 0;
    path[len] = '\0';
    return (size_t)len >= wanted && strcmp(path + len - wanted, suffix) == 0;
}

typedef int (*sync_fn)(int);

/* EIO if the fault is on for `fd`, else the C library's own `name`. */
static int sync_or_fail(int fd, const char *name, sync_fn *real) {
    if (should_fail(fd)) {
        errno = EIO;
        return -1;
    }
    if (*real == NULL) *real = (sync_fn)dlsym(RTLD_NEXT, name);
    return (*real)(fd);
}

int fsync(int fd) {
    static sync_fn real;
    return sync_or_fail(fd, "fsync", &real);
}

int fdatasync(int fd) {
    static sync_fn real;
    return sync_or_fail(fd, "fdatasync", &real);
}
