/* Test firmware: a Thumb IT block ("ite gt", a 16-bit and a 32-bit conditional
 * instruction) run twice, each time with one condition failing (test_firmware_debug.py). */
volatile int result;

__attribute__((noinline)) int itfunc(int x)
{
    int r;
    __asm__ volatile(
        ".syntax unified\n"
        "mov r0, %1\n"
        "cmp r0, #5\n"
        ".globl it_start\n"
        "it_start: ite gt\n"
        ".globl it_then\n"
        "it_then: addgt r0, r0, #100\n"
        ".globl it_else\n"
        "it_else: movle.w r0, #7\n"
        "mov %0, r0\n"
        : "=r"(r) : "r"(x) : "r0", "cc");
    return r;
}

int main(void)
{
    result = itfunc(1) + itfunc(11);
    return 0;
}
