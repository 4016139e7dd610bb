/* statlayout.c - print the offsets and size of struct stat as the C library sees them
 * (glibc's struct stat matches the kernel's on x86_64 and aarch64). */
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#define F(f) printf("%s %zu\n", #f, offsetof(struct stat, f))

int main(void)
{
    F(st_dev); F(st_ino); F(st_nlink); F(st_mode); F(st_uid); F(st_gid); F(st_rdev);
    F(st_size); F(st_blksize); F(st_blocks); F(st_atim.tv_sec); F(st_atim.tv_nsec);
    F(st_mtim.tv_sec); F(st_mtim.tv_nsec); F(st_ctim.tv_sec); F(st_ctim.tv_nsec);
    printf("size %zu\n", sizeof(struct stat));
    return 0;
}
