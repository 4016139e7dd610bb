/* Test firmware: UART "hello", a SysTick-driven counter, a timer peripheral, SVCall and
 * PendSV, and a bug: the SysTick handler writes samples[ticks % 10] into an 8-entry array,
 * so ticks 8 and 9 overwrite the first 8 bytes of `message` (placed right after it). */
#include <stdint.h>

#define REG(a) (*(volatile uint32_t *)(a))
#define UART_DATA REG(0x40004000)
#define UART_STATUS REG(0x40004004)
#define TIM_CTRL REG(0x40001000)
#define TIM_LOAD REG(0x40001004)
#define TIM_STATUS REG(0x4000100c)
#define SYST_CSR REG(0xE000E010)
#define SYST_RVR REG(0xE000E014)
#define SYST_CVR REG(0xE000E018)
#define NVIC_ISER0 REG(0xE000E100)
#define SCB_ICSR REG(0xE000ED04)

volatile uint32_t ticks;
volatile uint32_t timer_hits;
volatile uint32_t svc_calls;
volatile uint32_t pendsv_runs;
uint32_t samples[8] = {1};
char message[16] = "hello, world";

static void uart_putc(char c)
{
    while (!(UART_STATUS & 2))
        ;
    UART_DATA = (uint8_t)c;
}

static void uart_puts(const char *s)
{
    while (*s)
        uart_putc(*s++);
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
        uart_putc(buf[--i]);
}

void SysTick_Handler(void)
{
    ticks++;
    samples[ticks % 10] = ticks; /* BUG: samples has 8 entries */
}

void TIM0_IRQHandler(void)
{
    TIM_STATUS = 1;
    timer_hits++;
}

void SVC_Handler(void)
{
    svc_calls++;
}

void PendSV_Handler(void)
{
    pendsv_runs++;
}

static void semihost_exit(int status)
{
    register uint32_t r0 __asm__("r0") = 0x18;      /* SYS_EXIT */
    register uint32_t r1 __asm__("r1") = status ? 0x20023 : 0x20026;
    __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
}

int main(void)
{
    uart_puts("hello\n");
    SYST_RVR = 999;          /* every 1000 cycles */
    SYST_CVR = 0;
    SYST_CSR = 7;            /* enable, interrupt, processor clock */
    TIM_LOAD = 2500;
    NVIC_ISER0 = 1;          /* IRQ 0 */
    TIM_CTRL = 3;            /* enable, interrupt */
    while (ticks < 12)
        __asm__ volatile("wfi");
    TIM_CTRL = 0;
    SYST_CSR = 0;
    __asm__ volatile("svc #1");
    SCB_ICSR = 1u << 28;     /* PENDSVSET */
    __asm__ volatile("dsb; isb");
    uart_puts("ticks ");
    uart_putu(ticks);
    uart_puts(" timer ");
    uart_putu(timer_hits);
    uart_puts(" svc ");
    uart_putu(svc_calls);
    uart_puts(" pendsv ");
    uart_putu(pendsv_runs);
    uart_puts("\nmessage ");
    uart_puts(message);
    uart_puts("\n");
    semihost_exit(0);
    return 0;
}
