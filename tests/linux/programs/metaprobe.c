/* File metadata, process facts and error semantics (issue 16). Works in the current
 * directory (a fresh temporary one); prints facts that a native run prints the same way.
 * usage: metaprobe [bigmmap] */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>
#include <utime.h>

#define CHECK(what, cond) printf("%-28s %s\n", what, (cond) ? "ok" : "FAIL")

static long mode_of(const char *path) {
    struct stat st;
    return lstat(path, &st) ? -1 : (long)(st.st_mode & 07777);
}

static long long mtime_of(const char *path) {
    struct stat st;
    return stat(path, &st) ? -1 : (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

static void *volatile bad = (void *)8; /* unmapped */

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "bigmmap")) {
        /* 64 TiB of anonymous memory: Linux (overcommit) maps it lazily. */
        size_t size = (size_t)64 << 40;
        char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            printf("mmap 64T: %s\n", strerror(errno));
            return 1;
        }
        p[0] = 1;
        p[size - 1] = 2;
        printf("mmap 64T: ok %d %d\n", p[0], p[size - 1]);
        return munmap(p, size) != 0;
    }
    umask(022);
    int fd = open("f", O_CREAT | O_RDWR | O_TRUNC, 0600);
    CHECK("open", fd >= 0);
    CHECK("write", write(fd, "hello world\n", 12) == 12);
    CHECK("fchmod", fchmod(fd, 0640) == 0 && mode_of("f") == 0640);
    CHECK("chmod", chmod("f", 0604) == 0 && mode_of("f") == 0604);
    CHECK("fchmodat", fchmodat(AT_FDCWD, "f", 0644, 0) == 0 && mode_of("f") == 0644);
    CHECK("fchown (no change)", fchown(fd, -1, -1) == 0);
    CHECK("chown (own ids)", chown("f", getuid(), getgid()) == 0);
    CHECK("lchown", lchown("f", -1, getgid()) == 0);
    CHECK("fchownat", fchownat(AT_FDCWD, "f", getuid(), -1, AT_SYMLINK_NOFOLLOW) == 0);
    CHECK("chown missing", chown("nope", 0, 0) == -1 && errno == ENOENT);
    struct timeval tv[2] = {{1000000000, 250000}, {1200000000, 500000}};
    CHECK("utimes", utimes("f", tv) == 0 && mtime_of("f") == 1200000000500000000LL);
    struct utimbuf ub = {1100000000, 1300000000};
    CHECK("utime", utime("f", &ub) == 0 && mtime_of("f") == 1300000000000000000LL);
    struct timespec ts[2] = {{0, UTIME_OMIT}, {1400000000, 7}};
    CHECK("futimens", futimens(fd, ts) == 0 && mtime_of("f") == 1400000000000000007LL);
    struct statfs sf;
    CHECK("statfs", statfs(".", &sf) == 0 && sf.f_bsize > 0);
    CHECK("fstatfs", fstatfs(fd, &sf) == 0 && sf.f_blocks > 0);
    CHECK("symlink", symlink("f", "s") == 0);
    char buf[64] = {0};
    CHECK("readlink", readlink("s", buf, sizeof buf) == 1 && buf[0] == 'f');
    CHECK("symlinkat", symlinkat("f", AT_FDCWD, "s2") == 0);
    CHECK("link", link("f", "h") == 0);
    CHECK("linkat", linkat(AT_FDCWD, "f", AT_FDCWD, "h2", 0) == 0);
    struct stat st;
    CHECK("nlink", stat("f", &st) == 0 && st.st_nlink == 3);
    CHECK("mkfifo", mkfifo("fifo", 0666) == 0 && stat("fifo", &st) == 0 && S_ISFIFO(st.st_mode)
          && (st.st_mode & 0777) == 0644);
    CHECK("mknodat reg", mknodat(AT_FDCWD, "reg", S_IFREG | 0600, 0) == 0 && mode_of("reg") == 0600);
    CHECK("fallocate", fallocate(fd, 0, 0, 65536) == 0 && fstat(fd, &st) == 0
          && st.st_size == 65536);
    CHECK("posix_fallocate", posix_fallocate(fd, 0, 70000) == 0);
    CHECK("fsync", fsync(fd) == 0);
    CHECK("fdatasync", fdatasync(fd) == 0);
    CHECK("syncfs", syncfs(fd) == 0);
    sync();
    CHECK("sync_file_range", sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) == 0);
    CHECK("fadvise", posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL) == 0);
    int out = open("copy", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    off_t off = 6;
    CHECK("sendfile", sendfile(out, fd, &off, 5) == 5 && off == 11);
    lseek(fd, 0, SEEK_SET);
    CHECK("sendfile cur", sendfile(out, fd, NULL, 6) == 6 && lseek(fd, 0, SEEK_CUR) == 6);
    loff_t in_off = 0;
    CHECK("copy_file_range", copy_file_range(fd, &in_off, out, NULL, 12, 0) == 12);
    close(out);
    int c = open("copy", O_RDONLY);
    memset(buf, 0, sizeof buf);
    CHECK("copied bytes", read(c, buf, sizeof buf) == 23 && !memcmp(buf, "worldhello hello world\n", 23));
    /* read at end of file into a bad pointer: 0 (nothing to copy) */
    CHECK("read EOF bad ptr", read(c, bad, 16) == 0);
    close(c);
    int pp[2];
    pipe(pp);
    close(pp[1]);
    CHECK("pipe EOF bad ptr", read(pp[0], bad, 16) == 0);
    close(pp[0]);
    /* writev with a bad second iovec: the first one is written */
    struct iovec iov[2] = {{"abc", 3}, {bad, 4}};
    int w = open("wv", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    CHECK("writev partial", writev(w, iov, 2) == 3);
    close(w);
    close(fd);

    /* process facts */
    int n = getgroups(0, NULL);
    gid_t groups[256];
    CHECK("getgroups", n >= 0 && getgroups(256, groups) == n);
    printf("groups %d\n", n);
    CHECK("setgroups", setgroups(n, groups) == 0 || errno == EPERM);
    static char page[8192];
    CHECK("mlock", mlock(page, sizeof page) == 0 && munlock(page, sizeof page) == 0);
    CHECK("mlock unmapped", mlock((void *)4096, 4096) == -1 && errno == ENOMEM);
    CHECK("mlockall", mlockall(MCL_CURRENT) == 0 && munlockall() == 0);
    errno = 0;
    int prio = getpriority(PRIO_PROCESS, 0);
    CHECK("getpriority", prio == 0 && errno == 0);
    CHECK("setpriority", setpriority(PRIO_PROCESS, 0, 5) == 0 && getpriority(PRIO_PROCESS, 0) == 5);
    CHECK("ioprio_get", syscall(SYS_ioprio_get, 1, 0) >= 0);
    CHECK("ioprio_set", syscall(SYS_ioprio_set, 1, 0, (2 << 13) | 4) == 0
          && syscall(SYS_ioprio_get, 1, 0) == ((2 << 13) | 4));
    struct sysinfo si;
    CHECK("sysinfo", sysinfo(&si) == 0 && si.totalram > 0 && si.uptime > 0 && si.freeram > 0);
    cpu_set_t set;
    CHECK("sched_getaffinity", sched_getaffinity(0, sizeof set, &set) == 0);
    printf("cpus %d nprocs %ld\n", CPU_COUNT(&set), sysconf(_SC_NPROCESSORS_ONLN));
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    printf("nofile %llu %llu\n", (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
    getrlimit(RLIMIT_MEMLOCK, &rl);
    printf("memlock %llu %llu\n", (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
    getrlimit(RLIMIT_CORE, &rl); /* (the test harness lowers it natively: not printed) */
    rl.rlim_cur = 0;
    CHECK("setrlimit", setrlimit(RLIMIT_CORE, &rl) == 0 && getrlimit(RLIMIT_CORE, &rl) == 0
          && rl.rlim_cur == 0);
    return 0;
}
