/* An unsupported system call (kexec_load): ENOSYS by default, a stop under --strict. */
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void) { long r = syscall(SYS_kexec_load, 0, 0, 0, 0); printf("after %ld\n", r); return 0; }
