/* Test firmware: priorities. SysTick (priority 0x40) preempts the timer's handler (IRQ 0,
 * priority 0xc0), which busy-waits longer than a tick (300 cycles); then BASEPRI = 0x40 holds SysTick
 * back for a while. */
#include <stdint.h>

#define REG(a) (*(volatile uint32_t *)(a))
#define UART_DATA REG(0x40004000)
#define TIM_CTRL REG(0x40001000)
#define TIM_LOAD REG(0x40001004)
#define TIM_STATUS REG(0x4000100c)
#define SYST_CSR REG(0xE000E010)
#define SYST_RVR REG(0xE000E014)
#define NVIC_ISER0 REG(0xE000E100)
#define NVIC_IPR0 REG(0xE000E400)
#define SCB_SHPR3 REG(0xE000ED20)

volatile uint32_t ticks, nested, timer_runs, masked_ticks, in_timer;

static void uart_puts(const char *s)
{
    while (*s)
        UART_DATA = (uint8_t)*s++;
}

void SysTick_Handler(void)
{
    ticks++;
    if (in_timer)
        nested++;
}

void TIM0_IRQHandler(void)
{
    TIM_STATUS = 1;
    in_timer = 1;
    timer_runs++;
    for (volatile int i = 0; i < 100; i++)
        ;
    in_timer = 0;
}

static void semihost_exit(int status)
{
    register uint32_t r0 __asm__("r0") = 0x18;
    register uint32_t r1 __asm__("r1") = status ? 0x20023 : 0x20026;
    __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
}

int main(void)
{
    uint32_t before;
    SCB_SHPR3 = 0x40u << 24;     /* SysTick */
    NVIC_IPR0 = 0xC0u;           /* IRQ 0 */
    NVIC_ISER0 = 1;
    SYST_RVR = 299;
    SYST_CSR = 7;
    TIM_LOAD = 2000;
    TIM_CTRL = 3;
    while (timer_runs < 3)
        __asm__ volatile("wfi");
    TIM_CTRL = 0;
    __asm__ volatile("msr basepri, %0" : : "r"(0x40) : "memory");
    before = ticks;
    for (volatile int i = 0; i < 400; i++)
        ;
    masked_ticks = ticks - before;
    __asm__ volatile("msr basepri, %0\n dsb\n isb" : : "r"(0) : "memory");
    uart_puts(nested ? "nested yes" : "nested no");
    uart_puts(masked_ticks ? " masked no\n" : " masked yes\n");
    uart_puts(ticks > before ? "taken after\n" : "lost\n");
    semihost_exit(0);
    return 0;
}
