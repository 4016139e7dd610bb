/* Test firmware: two tasks on the process stack, switched by PendSV (lowest priority)
 * that SysTick (highest) pends every 500 cycles, as an RTOS does. A critical section
 * (cpsid/cpsie) holds SysTick back; the counter model (tests/firmware/fwmodels.py, IRQ 2)
 * interrupts once; the UART echoes what arrives on standard input, upper-cased. */
#include <stdint.h>

#define REG(a) (*(volatile uint32_t *)(a))
#define UART_DATA REG(0x40004000)
#define UART_STATUS REG(0x40004004)
#define COUNTER_NOW REG(0x40002000)
#define COUNTER_ARM REG(0x40002004)
#define SYST_CSR REG(0xE000E010)
#define SYST_RVR REG(0xE000E014)
#define NVIC_ISER0 REG(0xE000E100)
#define NVIC_IPR0 REG(0xE000E400)
#define SCB_ICSR REG(0xE000ED04)
#define SCB_SHPR3 REG(0xE000ED20)

static void uart_puts(const char *s)
{
    while (*s)
        UART_DATA = (uint8_t)*s++;
}

static void uart_putu(uint32_t v)
{
    char buf[12];
    int i = 0;
    do {
        buf[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i)
        UART_DATA = (uint8_t)buf[--i];
}

volatile uint32_t ticks, runs[2], counter_irqs, late_ticks;
uint32_t stacks[2][128];
uint32_t *task_sp[2];
uint32_t current;

void SysTick_Handler(void)
{
    ticks++;
    SCB_ICSR = 1u << 28; /* PENDSVSET: switch tasks when no handler runs */
}

void COUNTER_IRQHandler(void)
{
    counter_irqs++;
}

/* Save r4-r11 of the current task on its process stack, switch, restore. */
__attribute__((naked)) void PendSV_Handler(void)
{
    __asm__ volatile(
        "mrs r0, psp\n"
        "stmdb r0!, {r4-r11}\n"
        "ldr r1, =current\n"
        "ldr r2, [r1]\n"
        "ldr r3, =task_sp\n"
        "str r0, [r3, r2, lsl #2]\n"
        "eor r2, r2, #1\n"
        "str r2, [r1]\n"
        "ldr r0, [r3, r2, lsl #2]\n"
        "ldmia r0!, {r4-r11}\n"
        "msr psp, r0\n"
        "bx lr\n");
}

static void semihost_exit(int status)
{
    register uint32_t r0 __asm__("r0") = 0x18;
    register uint32_t r1 __asm__("r1") = status ? 0x20023 : 0x20026;
    __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
}

static void task(uint32_t id)
{
    for (;;) {
        runs[id]++;
        if (id == 0 && runs[0] == 50) {
            /* A critical section longer than a tick: SysTick waits for cpsie. */
            uint32_t before;
            __asm__ volatile("cpsid i" ::: "memory");
            before = ticks;
            for (volatile int i = 0; i < 300; i++)
                ;
            late_ticks = ticks - before; /* 0: nothing ran in between */
            __asm__ volatile("cpsie i" ::: "memory");
        }
        if (id == 1 && ticks >= 20) {
            char c;
            uart_puts("ticks ");
            uart_putu(ticks);
            uart_puts(" both ");
            uart_putu(runs[0] > 0 && runs[1] > 0);
            uart_puts(" late ");
            uart_putu(late_ticks);
            uart_puts(" counter ");
            uart_putu(counter_irqs);
            uart_puts("\necho ");
            while (UART_STATUS & 1) {
                c = (char)UART_DATA;
                UART_DATA = (uint8_t)(c >= 'a' && c <= 'z' ? c - 32 : c);
            }
            semihost_exit(0);
        }
    }
}

static void task0(void) { task(0); }
static void task1(void) { task(1); }

static void task_init(uint32_t n, void (*entry)(void))
{
    uint32_t *sp = &stacks[n][128];
    *--sp = 1u << 24;             /* xPSR: Thumb */
    *--sp = (uint32_t)entry;      /* pc */
    *--sp = 0;                    /* lr */
    for (int i = 0; i < 5; i++)   /* r12, r3-r0 */
        *--sp = 0;
    for (int i = 0; i < 8; i++)   /* r11-r4 */
        *--sp = 0;
    task_sp[n] = sp;
}

int main(void)
{
    uart_puts("tasks\n");
    task_init(0, task0);
    task_init(1, task1);
    SCB_SHPR3 = (0xF0u << 16) | (0x00u << 24); /* PendSV lowest, SysTick highest */
    NVIC_IPR0 = 0x80u << 16;                    /* IRQ 2 in between */
    NVIC_ISER0 = 1u << 2;
    COUNTER_ARM = 3000;
    SYST_RVR = 499;
    SYST_CSR = 7;
    /* Task 0 goes on in Thread mode on the process stack (task 1 starts from the
     * frame task_init built, at the first PendSV). */
    current = 0;
    __asm__ volatile("msr psp, %0\n"
                     "movs r0, #2\n"
                     "msr control, r0\n"
                     "isb\n"
                     : : "r"(&stacks[0][128]) : "r0", "memory");
    task0();
    return 0;
}
