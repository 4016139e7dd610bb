/* Test firmware: a load from an address no region or peripheral holds. With the board's
 * faults = "handler" the HardFault handler reports the fault status registers and exits
 * with status 3; with the default (faults = "stop") the run stops at the load. */
#include <stdint.h>

#define REG(a) (*(volatile uint32_t *)(a))
#define UART_DATA REG(0x40004000)
#define SCB_CFSR REG(0xE000ED28)
#define SCB_HFSR REG(0xE000ED2C)
#define SCB_BFAR REG(0xE000ED38)

static void uart_puts(const char *s)
{
    while (*s)
        UART_DATA = (uint8_t)*s++;
}

static void uart_puthex(uint32_t v)
{
    for (int i = 28; i >= 0; i -= 4)
        UART_DATA = (uint8_t)"0123456789abcdef"[(v >> i) & 15];
}

void HardFault_Handler(void)
{
    static const uint32_t block[2] = {0x20026, 3};
    uart_puts("hardfault cfsr ");
    uart_puthex(SCB_CFSR);
    uart_puts(" hfsr ");
    uart_puthex(SCB_HFSR);
    uart_puts(" bfar ");
    uart_puthex(SCB_BFAR);
    uart_puts("\n");
    register uint32_t r0 __asm__("r0") = 0x20; /* SYS_EXIT_EXTENDED */
    register const uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
}

int main(void)
{
    uart_puts("before\n");
    return (int)REG(0x30000010);
}
