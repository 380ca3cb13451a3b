// Trap: out-of-bounds linear memory access (a store near the top of the 32-bit address space).
#include <stdint.h>
#include <stdio.h>
int main(void) {
    printf("before the trap\n");
    fflush(stdout);
    volatile uint32_t *p = (volatile uint32_t *)(uintptr_t)0xFFFFFFF0u;
    *p = 42;
    printf("not reached\n");
    return 0;
}
