/* Test firmware: UART input by interrupt. The RX interrupt (IRQ 1) drains the received
 * bytes into a buffer; main sleeps (wfi) until a newline came, then prints the line
 * reversed. */
#include <stdint.h>

#define REG(a) (*(volatile uint32_t *)(a))
#define UART_DATA REG(0x40004000)
#define UART_STATUS REG(0x40004004)
#define UART_CTRL REG(0x40004008)
#define NVIC_ISER0 REG(0xE000E100)

char line[64];
volatile uint32_t len, done, irqs;

void UART0_IRQHandler(void)
{
    irqs++;
    while (UART_STATUS & 1) {
        char c = (char)UART_DATA;
        if (c == '\n')
            done = 1;
        else if (len < sizeof line)
            line[len++] = c;
    }
}

static void semihost_exit(int status)
{
    register uint32_t r0 __asm__("r0") = 0x18;
    register uint32_t r1 __asm__("r1") = status ? 0x20023 : 0x20026;
    __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
}

int main(void)
{
    NVIC_ISER0 = 1u << 1;
    UART_CTRL = 1;
    while (!done)
        __asm__ volatile("wfi");
    while (len)
        UART_DATA = (uint8_t)line[--len];
    UART_DATA = '\n';
    semihost_exit(0);
    return 0;
}
