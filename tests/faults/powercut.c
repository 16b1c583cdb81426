/* powercut: an LD_PRELOAD shim that lets a test take away every write after the last fsync.
 *
 * Loaded into gatewayd, it watches the files under $POWERCUT_DIR whose name starts
 * with $POWERCUT_NAME (the journal: its database, -wal and -journal files; not -shm).  Before
 * each write to such a file it appends an undo record to "<file>.undo": the offset,
 * the bytes about to be overwritten and the file's size.  A successful fsync or
 * fdatasync of the file empties its undo log: everything written so far is durable.
 *
 * After the process group is SIGKILLed, the test (tests/faults/powercut.py) applies
 * each undo log backwards: the files are exactly as their last fsync left them, as
 * after a power loss that kept nothing the disk was not told to keep.  The daemon
 * runs its own SQLite driver (Python's sqlite3 module, libsqlite3) unchanged.
 *
 * Record: int64 offset, int64 old_len, int64 old_size, then old_len bytes.
 * Not modelled: torn pages (a write lost only in part) and directory entries.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define MAXFD 65536
#define MAXFILES 32

struct watched {
    char path[4096];
    int undo;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char fd_file[MAXFD]; /* 0: not watched, else index + 1 into files */
static struct watched files[MAXFILES];
static int nfiles;

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static void init(void) {
    if (real_open) return;
    real_open = dlsym(RTLD_NEXT, "open");
    real_open64 = dlsym(RTLD_NEXT, "open64");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_close = dlsym(RTLD_NEXT, "close");
    real_write = dlsym(RTLD_NEXT, "write");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
    real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
    real_ftruncate64 = dlsym(RTLD_NEXT, "ftruncate64");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
}

__attribute__((constructor)) static void powercut_init(void) { init(); }

static int wanted(const char *path) {
    const char *dir = getenv("POWERCUT_DIR");
    const char *name = getenv("POWERCUT_NAME");
    size_t n;
    const char *base;
    if (!dir || !name || !path || path[0] != '/') return 0;
    n = strlen(dir);
    if (strncmp(path, dir, n) != 0 || path[n] != '/') return 0;
    base = strrchr(path, '/') + 1;
    if (strncmp(base, name, strlen(name)) != 0) return 0;
    /* -shm is SQLite's shared-memory index, rebuilt from the WAL by the first
       connection after a crash: what is on disk there does not matter */
    return strstr(base, ".undo") == NULL && strstr(base, "-shm") == NULL;
}

static void watch(int fd, const char *path) {
    int i;
    if (fd < 0 || fd >= MAXFD || !wanted(path)) return;
    pthread_mutex_lock(&mu);
    for (i = 0; i < nfiles; i++)
        if (strcmp(files[i].path, path) == 0) break;
    if (i == nfiles && nfiles < MAXFILES && strlen(path) + 6 < sizeof files[i].path) {
        char undo[4096 + 8];
        strcpy(files[i].path, path);
        strcpy(undo, path);
        strcat(undo, ".undo");
        files[i].undo = real_open(undo, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (files[i].undo >= 0) nfiles++;
    }
    if (i < nfiles) fd_file[fd] = (unsigned char)(i + 1);
    pthread_mutex_unlock(&mu);
}

static struct watched *watched_fd(int fd) {
    if (fd < 0 || fd >= MAXFD || fd_file[fd] == 0) return NULL;
    return &files[fd_file[fd] - 1];
}

static void put_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = real_write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) abort(); /* an undo log we cannot write would make the test lie */
        p += w;
        n -= (size_t)w;
    }
}

/* Save what [off, off + len) holds now, and the size: called with mu held. */
static void save(struct watched *w, int fd, off_t off, size_t len) {
    struct stat st;
    int64_t head[3];
    size_t old_len = 0;
    char *old = NULL;
    if (fstat(fd, &st) != 0) abort();
    if (off < st.st_size) {
        old_len = (size_t)(st.st_size - off) < len ? (size_t)(st.st_size - off) : len;
        old = malloc(old_len ? old_len : 1);
        if (!old || pread(fd, old, old_len, off) != (ssize_t)old_len) abort();
    }
    head[0] = off;
    head[1] = (int64_t)old_len;
    head[2] = st.st_size;
    put_all(w->undo, head, sizeof head);
    if (old_len) put_all(w->undo, old, old_len);
    free(old);
}

static int open_any(int (*fn)(const char *, int, ...), const char *path, int flags, va_list ap) {
    mode_t mode = 0;
    int fd;
    if (flags & (O_CREAT | O_TMPFILE)) mode = va_arg(ap, mode_t);
    fd = fn(path, flags, mode);
    watch(fd, path);
    return fd;
}

int open(const char *path, int flags, ...) {
    va_list ap;
    int fd;
    init();
    va_start(ap, flags);
    fd = open_any(real_open, path, flags, ap);
    va_end(ap);
    return fd;
}

int open64(const char *path, int flags, ...) {
    va_list ap;
    int fd;
    init();
    va_start(ap, flags);
    fd = open_any(real_open64, path, flags, ap);
    va_end(ap);
    return fd;
}

int openat(int dirfd, const char *path, int flags, ...) {
    va_list ap;
    mode_t mode = 0;
    int fd;
    init();
    va_start(ap, flags);
    if (flags & (O_CREAT | O_TMPFILE)) mode = va_arg(ap, mode_t);
    va_end(ap);
    fd = real_openat(dirfd, path, flags, mode);
    watch(fd, path);
    return fd;
}

int close(int fd) {
    init();
    if (fd >= 0 && fd < MAXFD) fd_file[fd] = 0;
    return real_close(fd);
}

static ssize_t pwrite_any(ssize_t (*fn)(int, const void *, size_t, off_t), int fd,
                          const void *buf, size_t n, off_t off) {
    struct watched *w = watched_fd(fd);
    ssize_t r;
    if (!w) return fn(fd, buf, n, off);
    pthread_mutex_lock(&mu);
    save(w, fd, off, n);
    r = fn(fd, buf, n, off);
    pthread_mutex_unlock(&mu);
    return r;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    init();
    return pwrite_any(real_pwrite, fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    init();
    return pwrite_any(real_pwrite64, fd, buf, n, off);
}

ssize_t write(int fd, const void *buf, size_t n) {
    struct watched *w;
    ssize_t r;
    init();
    w = watched_fd(fd);
    if (!w) return real_write(fd, buf, n);
    pthread_mutex_lock(&mu);
    save(w, fd, lseek(fd, 0, SEEK_CUR), n);
    r = real_write(fd, buf, n);
    pthread_mutex_unlock(&mu);
    return r;
}

static int truncate_any(int (*fn)(int, off_t), int fd, off_t len) {
    struct watched *w = watched_fd(fd);
    struct stat st;
    int r;
    if (!w) return fn(fd, len);
    pthread_mutex_lock(&mu);
    if (fstat(fd, &st) != 0) abort();
    save(w, fd, len, st.st_size > len ? (size_t)(st.st_size - len) : 0);
    r = fn(fd, len);
    pthread_mutex_unlock(&mu);
    return r;
}

int ftruncate(int fd, off_t len) {
    init();
    return truncate_any(real_ftruncate, fd, len);
}

int ftruncate64(int fd, off_t len) {
    init();
    return truncate_any(real_ftruncate64, fd, len);
}

static int sync_any(int (*fn)(int), int fd) {
    struct watched *w = watched_fd(fd);
    int r;
    if (!w) return fn(fd);
    pthread_mutex_lock(&mu);
    r = fn(fd);
    if (r == 0 && real_ftruncate(w->undo, 0) != 0) abort(); /* durable: nothing to undo */
    pthread_mutex_unlock(&mu);
    return r;
}

int fsync(int fd) {
    init();
    return sync_any(real_fsync, fd);
}

int fdatasync(int fd) {
    init();
    return sync_any(real_fdatasync, fd);
}
