/* Test firmware: main returns and the reset handler sleeps (wfi) with no interrupt enabled:
 * nothing can wake it. */
int main(void)
{
    return 0;
}
